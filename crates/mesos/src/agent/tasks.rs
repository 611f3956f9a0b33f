//! Command tasks under the agent's built-in command executor: each launched in its own
//! container (by the [`Containerizer`](super::containerizer::Containerizer)), supervised
//! until it ends, killed with SIGTERM then SIGKILL after its grace period, re-attached to
//! after an agent restart; and how each end reads in the task's final status, as Mesos'
//! command executor words it.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::containerizer::{self, Exit, Exited, Launch, NotSignalled, Remains, Waited};
use super::state::{Run, Shared};
use super::{executor, health, sandbox};
use crate::api::{self, FrameworkInfo, Reason, Source, TaskInfo, TaskState};

/// Default time between SIGTERM and SIGKILL when a task has no kill policy.
pub(crate) const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// RUN_TASK: runs a task, under its custom executor if it names one.
pub(crate) fn launch(shared: &Shared, framework: FrameworkInfo, task: TaskInfo) {
    if executor::is_custom(&task) {
        return executor::launch(shared, framework, task);
    }
    let framework_id = framework
        .id
        .as_ref()
        .map(|i| i.value.clone())
        .unwrap_or_default();
    let executor_id = task
        .executor
        .as_ref()
        .map(|e| e.executor_id.value.clone())
        .unwrap_or_else(|| task.task_id.value.clone());
    let container_id = uuid::Uuid::new_v4().to_string();
    let sandbox = match sandbox::sandbox_dir(
        &shared.config.work_dir,
        &shared.agent_id(),
        &framework_id,
        &executor_id,
        &container_id,
    ) {
        Ok(sandbox) => sandbox,
        Err(e) => return refuse(shared, framework, task, &executor_id, &e.to_string()),
    };
    let run = Run::staging(framework, task, executor_id, container_id, sandbox);
    let key = run.key();
    if !shared.admit(&run, "task already running; ignoring the duplicate launch") {
        return;
    }
    shared.checkpoint(&run);
    let shared = shared.clone();
    tokio::spawn(async move {
        match start(&shared, &run).await {
            Ok(exited) => supervise(shared, key, exited).await,
            Err(e) => {
                tracing::warn!(task = %key, error = %e, "task failed to start");
                shared.update(
                    &key,
                    TaskState::Failed,
                    Some(format!("Failed to launch container: {e}")),
                    Some(Reason::ContainerLaunchFailed),
                );
            }
        }
    });
}

/// Ends a task the agent will not run (its ids would lead outside the work dir) with
/// TASK_ERROR, writing nothing but its checkpoint. Without a valid framework and task id
/// there is nothing to report it under: the master never sends such a task.
pub(crate) fn refuse(
    shared: &Shared,
    framework: FrameworkInfo,
    task: TaskInfo,
    executor_id: &str,
    why: &str,
) {
    let framework_id = framework.id.as_ref().map_or("", |i| i.value.as_str());
    if api::validate_id(framework_id).is_err() || api::validate_id(&task.task_id.value).is_err() {
        tracing::warn!(framework_id, task_id = %task.task_id.value, why, "refused a task that cannot be reported");
        return;
    }
    // Its updates carry the executor id, which must itself be valid to be delivered.
    let executor_id = Some(executor_id)
        .filter(|e| api::validate_id(e).is_ok())
        .unwrap_or(&task.task_id.value)
        .to_string();
    let container_id = uuid::Uuid::new_v4().to_string();
    let run = Run::staging(framework, task, executor_id, container_id, PathBuf::new());
    let key = run.key();
    if !shared.admit(&run, "refused a duplicate of a running task") {
        return;
    }
    tracing::warn!(task = %key, why, "task refused");
    shared.report(
        &key,
        TaskState::Error,
        Some(format!("Task refused by the agent: {why}")),
        Some(Reason::TaskInvalid),
        Source::Agent,
    );
}

/// Launches a run's container and reports it running; its end, to supervise.
async fn start(shared: &Shared, run: &Run) -> anyhow::Result<Exited> {
    let key = run.key();
    // Its StatsD socket first: the task is told its port.
    let mut run = run.clone();
    run.statsd_port = shared.open_statsd(&run);
    let run = &run;
    let command = run.task.command.clone().unwrap_or_default();
    let launch = Launch {
        container_id: &run.container_id,
        framework: &run.framework,
        command: &command,
        task: Some(&run.task),
        sandbox: &run.sandbox,
        env: shared.task_env(run),
    };
    let launched = match shared.containerizer.launch(launch).await {
        Ok(l) => l,
        Err(e) => {
            // No container will use it: its socket must not outlive the failed launch.
            shared.statsd.close(&run.container_id);
            return Err(e);
        }
    };
    let recorded = {
        let mut st = shared.lock();
        // Killed (or gone) while its URIs were fetched: the container must not outlive that.
        st.runs
            .get_mut(&key)
            .filter(|r| !TaskState::is_terminal(r.state) && !r.killing)
            .map(|run| {
                run.pid = launched.pid;
                run.process = launched.process.clone();
                run.clone()
            })
    };
    let Some(run) = recorded else {
        shared.statsd.close(&run.container_id);
        shared.containerizer.abort(&run.container_id, &launched);
        launched.exited.await;
        containerizer::destroy(
            &shared.containerizer,
            run.container_id.clone(),
            run.sandbox.clone(),
        )
        .await;
        anyhow::bail!("task was killed before it started")
    };
    shared.checkpoint(&run);
    shared.update(&key, TaskState::Starting, None, None);
    shared.update(&key, TaskState::Running, launched.note, None);
    tracing::info!(task = %key, pid = launched.pid, "task running");
    Ok(launched.exited)
}

/// Watches a running task (and its health) until its container's process is gone, then
/// destroys the container and reports how the task ended.
async fn supervise(shared: Shared, key: String, exited: Exited) {
    let health = health::start(&shared, &key);
    let waited = exited.await;
    // No health verdict may follow the task's end.
    drop(health);
    let Some((killing, container_id, sandbox)) = shared
        .lock()
        .runs
        .get(&key)
        .map(|r| (r.killing, r.container_id.clone(), r.sandbox.clone()))
    else {
        return;
    };
    shared.statsd.close(&container_id);
    let remains = containerizer::destroy(&shared.containerizer, container_id, sandbox).await;
    let (state, message, reason) = termination(&waited, remains, killing);
    tracing::info!(task = %key, %state, %message, "task ended");
    shared.update(&key, state, Some(message), reason);
}

/// How a command task's end reads in its final status, as Mesos' command executor says it:
/// killed, over its memory limit, or what its exit status says (the wait status when the
/// agent waited for it, else the one recorded where it ran).
pub(crate) fn termination(
    waited: &Waited,
    remains: Remains,
    killing: bool,
) -> (TaskState, String, Option<Reason>) {
    if killing {
        let message = "Command terminated with signal Terminated".to_string();
        return (TaskState::Killed, message, None);
    }
    if let Some(message) = remains.limitation {
        return (
            TaskState::Failed,
            message,
            Some(Reason::ContainerLimitationMemory),
        );
    }
    let recorded = remains.recorded_exit.map(Exit::recorded);
    let (exit, success) = match &waited.status {
        Some(Err(e)) => {
            return (
                TaskState::Failed,
                format!("Failed to wait for the task: {e}"),
                Some(Reason::ExecutorTerminated),
            )
        }
        Some(Ok(status)) if status.success() => (Exit::Status(0), true),
        Some(Ok(status)) => (recorded.unwrap_or(Exit::waited(*status)), false),
        None => match recorded {
            Some(exit) => (exit, exit == Exit::Status(0)),
            None => {
                return (
                    TaskState::Failed,
                    "Command terminated while the agent was down; its exit status is unknown"
                        .into(),
                    Some(Reason::CommandExecutorFailed),
                )
            }
        },
    };
    if success {
        (TaskState::Finished, exit.to_string(), None)
    } else {
        (
            TaskState::Failed,
            exit.to_string(),
            Some(Reason::CommandExecutorFailed),
        )
    }
}

/// KILL: TASK_KILLING, SIGTERM to its container, SIGKILL after the grace period (`grace`,
/// else its kill policy's, else [`DEFAULT_KILL_GRACE`]).
pub(crate) fn kill(shared: &Shared, key: &str, grace: Option<Duration>) {
    let (container, grace) = {
        let mut st = shared.lock();
        let Some(run) = st.runs.get_mut(key) else {
            tracing::warn!(task = %key, "kill for an unknown task");
            return;
        };
        if TaskState::is_terminal(run.state) {
            return;
        }
        run.killing = true;
        let policy = run
            .task
            .kill_policy
            .as_ref()
            .and_then(|k| k.grace_period.as_ref())
            .map(|g| Duration::from_nanos(g.nanoseconds.max(0) as u64));
        (run.handle(), grace.or(policy).unwrap_or(DEFAULT_KILL_GRACE))
    };
    shared.update(key, TaskState::Killing, None, None);
    match shared.containerizer.signal(&container, Signal::SIGTERM) {
        Err(NotSignalled::NotStarted) => shared.update(
            key,
            TaskState::Killed,
            Some("Task killed before it started".into()),
            None,
        ),
        Err(NotSignalled::Unidentified) => {
            // A pid the agent could not identify is never signalled: it may be another's.
            tracing::warn!(task = %key, "the task's process cannot be identified; not signalling it");
        }
        Ok(()) | Err(NotSignalled::Gone) => {
            let containerizer = shared.containerizer.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let _ = containerizer.signal(&container, Signal::SIGKILL);
            });
        }
    }
}

/// Loads the agent id and checkpointed runs, re-attaching to tasks (and custom executors)
/// that still run; the others' ends are reported, and containers no run owns destroyed.
pub(crate) fn recover(shared: &Shared) {
    let id = shared.load_agent_id();
    let runs = shared.load_runs();
    {
        let mut st = shared.lock();
        st.id = id;
        for run in &runs {
            st.runs.insert(run.key(), run.clone());
        }
    }
    executor::recover(shared);
    let live: Vec<&str> = runs
        .iter()
        .filter(|r| !TaskState::is_terminal(r.state))
        .map(|r| r.container_id.as_str())
        .collect();
    shared.containerizer.destroy_orphans(&live);
    for run in runs {
        // A custom executor's tasks live and die with their executor, recovered above.
        if !TaskState::is_terminal(run.state) && !run.custom {
            recover_run(shared, run);
        }
    }
}

/// Re-attaches to a checkpointed run's container, or reports how it ended meanwhile.
fn recover_run(shared: &Shared, run: Run) {
    let key = run.key();
    match shared.containerizer.reattach(&run.handle()) {
        Some(exited) => {
            tracing::info!(task = %key, pid = run.pid, "re-attached to running task");
            if run.statsd_port.is_some() {
                shared.open_statsd(&run);
            }
            tokio::spawn(supervise(shared.clone(), key, exited));
        }
        None => {
            let remains = shared
                .containerizer
                .destroy(&run.container_id, &run.sandbox);
            let (state, message, reason) = termination(&Waited::default(), remains, run.killing);
            tracing::info!(task = %key, %state, "task ended while the agent was down");
            shared.update(&key, state, Some(message), reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::path::Path;
    use std::process::ExitStatus;
    use std::sync::Arc;

    use super::*;
    use crate::agent::checkpoint::Process;
    use crate::agent::containerizer::simulated::Simulated;
    use crate::agent::Config;
    use crate::api::Id;

    fn task_run(work_dir: &Path, state: TaskState) -> Run {
        let sandbox = sandbox::sandbox_dir(work_dir, "agent", "fw", "task", "container").unwrap();
        std::fs::create_dir_all(&sandbox).unwrap();
        let framework = FrameworkInfo {
            id: Some(Id::new("fw")),
            ..FrameworkInfo::default()
        };
        let task = TaskInfo {
            task_id: Id::new("task"),
            agent_id: Id::new("agent"),
            ..TaskInfo::default()
        };
        let mut run = Run::staging(framework, task, "task".into(), "container".into(), sandbox);
        run.state = state;
        run
    }

    /// An agent's state over `work_dir` with one running task checkpointed, its process
    /// recorded as `process`.
    fn checkpointed(work_dir: &Path, process: Process) -> (Shared, String) {
        let shared = Shared::new(Config {
            work_dir: work_dir.to_path_buf(),
            ..Config::default()
        });
        let mut run = task_run(work_dir, TaskState::Running);
        run.pid = Some(process.pid);
        run.process = Some(process);
        let key = run.key();
        shared.lock().runs.insert(key.clone(), run.clone());
        shared.checkpoint(&run);
        shared.lock().runs.clear();
        (shared, key)
    }

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn state_of(shared: &Shared, key: &str) -> Option<TaskState> {
        shared.lock().runs.get(key).map(|r| r.state)
    }

    #[tokio::test]
    async fn recovery_never_takes_a_reused_pid_for_its_task() {
        let dir = tempfile::tempdir().unwrap();
        let mut other = sleeper();
        let mut identity = Process::of(other.id()).unwrap();
        // The checkpoint recorded a process that started at another time under this pid.
        identity.start_time += 1;
        let (shared, key) = checkpointed(dir.path(), identity);
        recover(&shared);
        assert_eq!(state_of(&shared, &key), Some(TaskState::Failed));
        kill(&shared, &key, Some(Duration::ZERO));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            other.try_wait().unwrap().is_none(),
            "the agent signalled a process that is not its task"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[tokio::test]
    async fn recovery_re_attaches_to_its_own_task_and_can_kill_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut task = sleeper();
        let identity = Process::of(task.id()).unwrap();
        let (shared, key) = checkpointed(dir.path(), identity);
        recover(&shared);
        assert_eq!(state_of(&shared, &key), Some(TaskState::Running));
        kill(&shared, &key, Some(Duration::ZERO));
        let status = tokio::task::spawn_blocking(move || task.wait().unwrap())
            .await
            .unwrap();
        assert!(!status.success());
    }

    #[tokio::test]
    async fn a_simulated_containerizer_runs_tasks_until_they_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let simulated = Arc::new(Simulated::default());
        let config = Config {
            work_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let shared = Shared::with_containerizer(Arc::new(config), simulated.clone());
        shared.lock().id = Some("agent".into());
        let run = task_run(dir.path(), TaskState::Staging);
        let key = run.key();
        launch(&shared, run.framework.clone(), run.task.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while state_of(&shared, &key) != Some(TaskState::Running) {
            assert!(tokio::time::Instant::now() < deadline, "never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(simulated.running(), 1);
        kill(&shared, &key, None);
        while state_of(&shared, &key) != Some(TaskState::Killed) {
            assert!(tokio::time::Instant::now() < deadline, "never killed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let states: Vec<TaskState> = shared.lock().runs[&key]
            .pending
            .iter()
            .map(|s| s.state)
            .collect();
        use TaskState::*;
        assert_eq!(states, [Starting, Running, Killing, Killed]);
        assert_eq!(simulated.running(), 0);
    }

    /// A containerizer whose launches all fail.
    struct Failing;

    impl crate::agent::containerizer::Containerizer for Failing {
        fn launch<'a>(
            &'a self,
            _launch: crate::agent::containerizer::Launch<'a>,
        ) -> futures::future::BoxFuture<'a, anyhow::Result<crate::agent::containerizer::Launched>>
        {
            Box::pin(async { anyhow::bail!("no room") })
        }
        fn abort(&self, _: &str, _: &crate::agent::containerizer::Launched) {}
        fn reattach(&self, _: &crate::agent::containerizer::Handle) -> Option<Exited> {
            None
        }
        fn signal(
            &self,
            _: &crate::agent::containerizer::Handle,
            _: nix::sys::signal::Signal,
        ) -> Result<(), crate::agent::containerizer::NotSignalled> {
            Err(crate::agent::containerizer::NotSignalled::NotStarted)
        }
        fn destroy(&self, _: &str, _: &Path) -> Remains {
            Remains::default()
        }
        fn destroy_orphans(&self, _: &[&str]) {}
        fn check_command(
            &self,
            _: crate::agent::containerizer::CheckTarget<'_>,
        ) -> Result<crate::agent::containerizer::CheckCommand, String> {
            Err("none".into())
        }
    }

    #[tokio::test]
    async fn a_failed_launch_closes_the_tasks_statsd_socket() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            work_dir: dir.path().to_path_buf(),
            statsd: Some("127.0.0.1:9".parse().unwrap()),
            ..Config::default()
        };
        let shared = Shared::with_containerizer(Arc::new(config), Arc::new(Failing));
        shared.lock().id = Some("agent".into());
        let run = task_run(dir.path(), TaskState::Staging);
        let key = run.key();
        launch(&shared, run.framework.clone(), run.task.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while state_of(&shared, &key) != Some(TaskState::Failed) {
            assert!(tokio::time::Instant::now() < deadline, "never failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            shared.lock().runs[&key].statsd_port.is_some(),
            "it had a socket"
        );
        assert_eq!(shared.statsd.len(), 0, "the socket is closed");
    }

    #[test]
    fn ends_read_as_the_command_executor_words_them() {
        let waited = |raw: i32| Waited {
            status: Some(Ok(ExitStatus::from_raw(raw))),
        };
        let recorded = |code: i32| Remains {
            recorded_exit: Some(code),
            ..Remains::default()
        };
        let down = Waited::default();
        let check = |got: (TaskState, String, Option<Reason>), state, message: &str, reason| {
            assert_eq!(got, (state, message.to_string(), reason));
        };
        let failed = Some(Reason::CommandExecutorFailed);
        use TaskState::*;
        check(
            termination(&waited(0), Remains::default(), false),
            Finished,
            "Command exited with status 0",
            None,
        );
        check(
            termination(&waited(3 << 8), recorded(3), false),
            Failed,
            "Command exited with status 3",
            failed,
        );
        check(
            termination(&waited(9), Remains::default(), false),
            Failed,
            "Command terminated with signal KILL",
            failed,
        );
        check(
            termination(&down, recorded(0), false),
            Finished,
            "Command exited with status 0",
            None,
        );
        check(
            termination(&down, recorded(143), false),
            Failed,
            "Command terminated with signal TERM",
            failed,
        );
        check(
            termination(&down, Remains::default(), false),
            Failed,
            "Command terminated while the agent was down; its exit status is unknown",
            failed,
        );
        check(
            termination(&down, recorded(0), true),
            Killed,
            "Command terminated with signal Terminated",
            None,
        );
        let oom = Remains {
            limitation: Some("Memory limit exceeded".into()),
            recorded_exit: Some(137),
        };
        check(
            termination(&waited(9), oom, false),
            Failed,
            "Memory limit exceeded",
            Some(Reason::ContainerLimitationMemory),
        );
        let lost = Waited {
            status: Some(Err("gone".into())),
        };
        check(
            termination(&lost, Remains::default(), false),
            Failed,
            "Failed to wait for the task: gone",
            Some(Reason::ExecutorTerminated),
        );
    }
}
