//! The agent's state in memory, and [`Shared`], the handle every part of the agent holds:
//! its runs (one per task, checkpointed), its custom executors, the master it follows, its
//! configuration and its containerizer.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::checkpoint::Process;
use super::containerizer::{Containerizer, Handle, MesosContainerizer};
use super::executor::Executor;
use super::http::DiskUsage;
use super::statsd::Relays;
use super::{beneath, sandbox, Config};
use crate::api::{self, FrameworkInfo, TaskInfo, TaskState, TaskStatus};

/// The prefix of the keys of completed runs kept for `/state`.
pub(crate) const COMPLETED: &str = "completed::";
/// How many completed runs `/state` shows.
const COMPLETED_KEPT: usize = 1000;

/// One task run, checkpointed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) framework: FrameworkInfo,
    pub(crate) task: TaskInfo,
    pub(crate) executor_id: String,
    pub(crate) container_id: String,
    pub(crate) sandbox: PathBuf,
    pub(crate) pid: Option<u32>,
    /// The process `pid` names, identified so a restarted agent never mistakes another
    /// process for it (absent in checkpoints that predate it: then it is never signalled).
    #[serde(default)]
    pub(crate) process: Option<Process>,
    pub(crate) state: TaskState,
    pub(crate) killing: bool,
    /// Updates not yet acknowledged, oldest first; the head is the one in flight.
    pub(crate) pending: VecDeque<TaskStatus>,
    pub(crate) last_status: Option<TaskStatus>,
    pub(crate) started: f64,
    /// Runs under a custom executor (the executor API), not the built-in command executor.
    #[serde(default)]
    pub(crate) custom: bool,
    /// Killed because its health check failed too often: its TASK_KILLED says so.
    #[serde(default)]
    pub(crate) health_killed: bool,
    /// The uuid of the update last sent and when, so the head is resent only on retry.
    #[serde(skip)]
    pub(crate) last_sent: Option<(String, std::time::Instant)>,
    /// Uuids of queued updates not yet on disk: none is sent before it is, so the master
    /// never sees (nor the framework acknowledges) an update a restarted agent would not know.
    #[serde(skip)]
    pub(crate) unsynced: Vec<String>,
    /// The port of its container's StatsD socket (`STATSD_UDP_PORT`), kept so a restarted
    /// agent opens it again where the task sends.
    #[serde(default)]
    pub(crate) statsd_port: Option<u16>,
}

impl Run {
    /// A task about to start (TASK_STAGING) in `sandbox`.
    pub(crate) fn staging(
        framework: FrameworkInfo,
        task: TaskInfo,
        executor_id: String,
        container_id: String,
        sandbox: PathBuf,
    ) -> Run {
        Run {
            framework,
            task,
            executor_id,
            container_id,
            sandbox,
            pid: None,
            process: None,
            state: TaskState::Staging,
            killing: false,
            pending: VecDeque::new(),
            last_status: None,
            started: api::now_secs(),
            custom: false,
            health_killed: false,
            last_sent: None,
            unsynced: Vec::new(),
            statsd_port: None,
        }
    }

    pub(crate) fn framework_id(&self) -> String {
        self.framework
            .id
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default()
    }

    /// `<framework>__<task>`, its key among the runs and its checkpoint's name.
    pub(crate) fn key(&self) -> String {
        format!("{}__{}", self.framework_id(), self.task.task_id.value)
    }

    /// Its container, as the containerizer knows it.
    pub(crate) fn handle(&self) -> Handle {
        Handle {
            container_id: self.container_id.clone(),
            pid: self.pid,
            process: self.process.clone(),
        }
    }

    /// Whether its ids are valid and its sandbox (if it has one) lies in the work dir.
    pub(crate) fn is_sane(&self, work_dir: &Path) -> bool {
        let ids = [
            self.framework_id(),
            self.task.task_id.value.clone(),
            self.executor_id.clone(),
        ];
        ids.iter().all(|i| api::validate_id(i).is_ok())
            && (self.sandbox.as_os_str().is_empty()
                || self
                    .sandbox
                    .strip_prefix(work_dir)
                    .ok()
                    .and_then(beneath::names)
                    .is_some())
    }
}

pub(crate) struct AgentState {
    pub(crate) id: Option<String>,
    /// Runs by [`Run::key`], and the completed ones by `completed::<key>`.
    pub(crate) runs: BTreeMap<String, Run>,
    /// Custom executors by `<framework>__<executor>`.
    pub(crate) executors: BTreeMap<String, Executor>,
    pub(crate) master: Option<SocketAddr>,
    pub(crate) start_time: f64,
}

impl AgentState {
    /// Runs whose task has not ended.
    pub(crate) fn live_runs(&self) -> impl Iterator<Item = &Run> {
        self.runs
            .iter()
            .filter(|(k, r)| !is_completed(k) && !TaskState::is_terminal(r.state))
            .map(|(_, r)| r)
    }

    /// Moves a finished, acknowledged run to the bounded history of completed runs.
    pub(crate) fn complete(&mut self, key: &str) {
        let Some(run) = self.runs.remove(key) else {
            return;
        };
        self.runs.insert(format!("{COMPLETED}{key}"), run);
        let done: Vec<String> = self
            .runs
            .keys()
            .filter(|k| is_completed(k))
            .cloned()
            .collect();
        for k in done.iter().take(done.len().saturating_sub(COMPLETED_KEPT)) {
            self.runs.remove(k);
        }
    }
}

/// Whether a key of [`AgentState::runs`] is one of a completed run.
pub(crate) fn is_completed(key: &str) -> bool {
    key.starts_with(COMPLETED)
}

#[derive(Clone)]
pub(crate) struct Shared {
    state: Arc<Mutex<AgentState>>,
    pub(crate) config: Arc<Config>,
    /// For the master: redirects are the master's to explain, not to follow.
    pub(crate) client: reqwest::Client,
    /// Wakes the update sender.
    pub(crate) updates: Arc<Notify>,
    /// Held while a checkpoint is written, so writes of the same run or executor never race
    /// and the last one written is the latest state.
    checkpoints: Arc<Mutex<()>>,
    /// Runs tasks' and executors' containers.
    pub(crate) containerizer: Arc<dyn Containerizer>,
    /// The containers' StatsD sockets.
    pub(crate) statsd: Arc<Relays>,
    /// The sandboxes' disk use as last measured (`/containers`' `disk_used_bytes`).
    pub(crate) disk_usage: Arc<DiskUsage>,
}

impl Shared {
    /// The agent of `config`, its containers run by the real containerizer.
    pub(crate) fn new(config: Config) -> Shared {
        let config = Arc::new(config);
        let containerizer = Arc::new(MesosContainerizer::new(config.clone()));
        Shared::with_containerizer(config, containerizer)
    }

    /// The agent of `config`, its containers run by `containerizer`.
    pub(crate) fn with_containerizer(
        config: Arc<Config>,
        containerizer: Arc<dyn Containerizer>,
    ) -> Shared {
        let client = reqwest::Client::builder()
            // A standby master's 307 names the leader, which the master link registers with.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Shared {
            state: Arc::new(Mutex::new(AgentState {
                id: None,
                runs: BTreeMap::new(),
                executors: BTreeMap::new(),
                master: None,
                start_time: api::now_secs(),
            })),
            client,
            updates: Arc::new(Notify::new()),
            checkpoints: Arc::new(Mutex::new(())),
            statsd: Arc::new(Relays::new(config.statsd, config.listen.ip())),
            disk_usage: Arc::default(),
            config,
            containerizer,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, AgentState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_checkpoints(&self) -> MutexGuard<'_, ()> {
        self.checkpoints.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The agent's id (empty before it first registered).
    pub(crate) fn agent_id(&self) -> String {
        self.lock().id.clone().unwrap_or_default()
    }

    pub(crate) fn host(&self) -> String {
        self.config.listen.ip().to_string()
    }

    pub(crate) fn endpoint(&self) -> String {
        self.config.listen.to_string()
    }

    /// Records a new run unless its task already runs here (a duplicate launch), which is
    /// logged with `duplicate` and left alone; whether it was recorded.
    pub(crate) fn admit(&self, run: &Run, duplicate: &str) -> bool {
        let key = run.key();
        let mut st = self.lock();
        if st
            .runs
            .get(&key)
            .is_some_and(|r| !TaskState::is_terminal(r.state))
        {
            tracing::warn!(task = %key, "{duplicate}");
            return false;
        }
        st.runs.insert(key, run.clone());
        true
    }

    /// The environment a run's task (and its command health checks) gets.
    pub(crate) fn task_env(&self, run: &Run) -> Vec<(String, String)> {
        let (agent_id, framework_id) = (self.agent_id(), run.framework_id());
        let endpoint = self.endpoint();
        let place = self.place(
            &agent_id,
            &framework_id,
            &run.executor_id,
            &run.sandbox,
            &endpoint,
        );
        let mut env = sandbox::task_env(&run.task, &place);
        // As the metrics module's isolator sets them, over the task's own.
        if let Some(port) = run.statsd_port {
            env.push(("STATSD_UDP_HOST".into(), self.statsd.host().to_string()));
            env.push(("STATSD_UDP_PORT".into(), port.to_string()));
        }
        env
    }

    /// Opens the StatsD socket of a run's container (again, on its recorded port, after a
    /// restart) and records its port; the port, None if tasks get no StatsD here.
    pub(crate) fn open_statsd(&self, run: &Run) -> Option<u16> {
        let framework_id = run.framework_id();
        let origin = dcos_metrics::relay::Origin {
            container_id: &run.container_id,
            executor_id: &run.executor_id,
            framework_id: &framework_id,
        };
        let port = self.statsd.open(origin, run.statsd_port)?;
        if let Some(r) = self.lock().runs.get_mut(&run.key()) {
            r.statsd_port = Some(port);
        }
        Some(port)
    }

    /// Where an executor of `framework_id` runs, for its environment.
    pub(crate) fn place<'a>(
        &'a self,
        agent_id: &'a str,
        framework_id: &'a str,
        executor_id: &'a str,
        sandbox: &'a Path,
        endpoint: &'a str,
    ) -> sandbox::ExecutorPlace<'a> {
        sandbox::ExecutorPlace {
            host: endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h),
            sandbox,
            framework_id,
            executor_id,
            agent_id,
            agent_endpoint: endpoint,
        }
    }
}
