//! The Mesos agent (`dcos-mesos-slave.service`, port 5051).
//!
//! It registers with the leading master over the agent protocol, runs command tasks with a
//! built-in command executor (each task in its own sandbox and process group), delivers
//! status updates at least once and in order per task (retried until acknowledged), and
//! checkpoints every task so a restarted agent re-attaches to the ones still running.
//! A task whose container names an image runs in it, as the Mesos containerizer runs it
//! (`container`).
//!
//! What a framework sends cannot reach past its sandbox: ids that are not plain names are
//! refused (TASK_ERROR), fetches land inside the sandbox and read local files only from
//! allowed directories (`fetcher`), tasks run as their user (`launcher`), the files API
//! serves sandboxes only and follows no symlink out of them (`files`), and checkpointed
//! pids are trusted only with their start time and boot (`checkpoint`).

mod beneath;
mod checkpoint;
pub mod container;
mod executor;
mod fetcher;
mod files;
mod health;
mod launcher;
pub mod sandbox;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dcos_ports::RangeSet;
use futures::StreamExt;
use nix::sys::signal::{killpg, Signal};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::{self, FrameworkInfo, Id, Reason, Source, TaskInfo, TaskState, TaskStatus};
use crate::protocol::{AgentCall, AgentEvent, AgentInfo, TaskReport, AGENT_API_PATH};
use crate::recordio;
use crate::resources::Resources;

/// Default time between SIGTERM and SIGKILL when a task has no kill policy.
const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);
/// Unacknowledged updates are resent this often.
const UPDATE_RETRY: Duration = Duration::from_secs(10);
/// A master stream silent for this long is considered lost.
const MASTER_SILENCE: Duration = Duration::from_secs(45);

/// Where local URIs may be fetched from unless configured otherwise.
pub const DEFAULT_FETCH_DIR: &str = "/var/lib/dcos/fetch";
/// The largest URI the fetcher saves unless configured otherwise: 10 GiB.
pub const DEFAULT_FETCH_MAX_BYTES: u64 = 10 << 30;

/// The agent's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen (the node's IP, port 5051).
    pub listen: SocketAddr,
    /// The masters (`ip:5050`), tried in order.
    pub masters: Vec<SocketAddr>,
    /// Sandboxes and checkpoints live here.
    pub work_dir: PathBuf,
    /// Advertised resources (ports: the contract's ranges minus co-located component ports).
    pub resources: Resources,
    /// Text attributes.
    pub attributes: BTreeMap<String, String>,
    /// The only directories local URIs (`file:///...` or a plain absolute path) are fetched
    /// from; any other local path fails the task. The fetcher runs as the agent (root), so
    /// without this a framework could copy any host file into a sandbox it can read.
    /// Symlinks below these directories are not followed. Default: [`DEFAULT_FETCH_DIR`]
    /// (`/var/lib/dcos/fetch`); empty allows no local URIs at all.
    pub fetch_allowed_dirs: Vec<PathBuf>,
    /// The largest URI the fetcher saves, in bytes; a larger one fails the task. Default:
    /// [`DEFAULT_FETCH_MAX_BYTES`] (10 GiB).
    pub fetch_max_bytes: u64,
    /// Run each task as its user (the command's `user`, else the framework's), as Mesos'
    /// `--switch_user` (default true). An agent not running as root can then run tasks only
    /// as itself and refuses other users; false runs every task as the agent's user.
    pub switch_user: bool,
    /// The `dcos` binary whose hidden `container-init` is a container's PID 1. Default (None):
    /// this process's own executable, which is `dcos` in production (tests point it at one).
    pub container_init: Option<PathBuf>,
    /// Where the images of tasks in containers come from; without one such tasks fail.
    pub images: Option<Arc<dyn container::ImageStore>>,
    /// Registries (`host:port`) reached over plain http, besides loopback ones: the masters'
    /// cluster-local registries.
    pub insecure_registries: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 5051)),
            masters: Vec::new(),
            work_dir: PathBuf::from("/var/lib/mesos/slave"),
            resources: Resources::default(),
            attributes: BTreeMap::new(),
            fetch_allowed_dirs: vec![PathBuf::from(DEFAULT_FETCH_DIR)],
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            switch_user: true,
            container_init: None,
            images: None,
            insecure_registries: Vec::new(),
        }
    }
}

impl Config {
    /// Detects cpus, memory and disk from the host.
    pub fn host_resources(work_dir: &Path) -> (f64, f64, f64) {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as f64)
            .unwrap_or(1.0);
        let mem_kb: f64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(1024.0 * 1024.0);
        // Mesos leaves the larger of 1 GiB and half the memory to the system on small hosts.
        let mem_mb = mem_kb / 1024.0;
        let mem = (mem_mb - (1024.0f64).min(mem_mb / 2.0)).max(32.0);
        let disk = nix::sys::statvfs::statvfs(work_dir)
            .map(|s| (s.blocks_available() as f64) * (s.fragment_size() as f64) / 1_048_576.0)
            .unwrap_or(10240.0);
        let disk = (disk - (5120.0f64).min(disk / 2.0)).max(0.0);
        (cpus, mem.floor(), disk.floor())
    }
}

/// Errors starting or running the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The port could not be bound.
    #[error("failed to bind the Mesos agent on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The work dir is unusable.
    #[error("cannot use agent work dir {path}")]
    WorkDir {
        /// The dir.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One task run, checkpointed.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Run {
    framework: FrameworkInfo,
    task: TaskInfo,
    executor_id: String,
    container_id: String,
    sandbox: PathBuf,
    pid: Option<u32>,
    /// The process `pid` names, identified so a restarted agent never mistakes another
    /// process for it (absent in checkpoints that predate it: then it is never signalled).
    #[serde(default)]
    process: Option<checkpoint::Process>,
    state: TaskState,
    killing: bool,
    /// Updates not yet acknowledged, oldest first; the head is the one in flight.
    pending: VecDeque<TaskStatus>,
    last_status: Option<TaskStatus>,
    started: f64,
    /// Runs under a custom executor (the executor API), not the built-in command executor.
    #[serde(default)]
    custom: bool,
    /// Killed because its health check failed too often: its TASK_KILLED says so.
    #[serde(default)]
    health_killed: bool,
    /// The uuid of the update last sent and when, so the head is resent only on retry.
    #[serde(skip)]
    last_sent: Option<(String, std::time::Instant)>,
}

impl Run {
    /// A task about to start (TASK_STAGING) in `sandbox`.
    fn staging(
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
        }
    }

    fn framework_id(&self) -> String {
        self.framework
            .id
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default()
    }

    fn key(&self) -> String {
        format!("{}__{}", self.framework_id(), self.task.task_id.value)
    }

    /// Whether its ids are valid and its sandbox (if it has one) lies in the work dir.
    fn is_sane(&self, work_dir: &Path) -> bool {
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

struct AgentState {
    id: Option<String>,
    runs: BTreeMap<String, Run>,
    /// Custom executors by `<framework>__<executor>`.
    executors: BTreeMap<String, executor::Executor>,
    master: Option<SocketAddr>,
    start_time: f64,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<AgentState>>,
    config: Arc<Config>,
    /// For the master: redirects are the master's to explain, not to follow.
    client: reqwest::Client,
    /// For the fetcher: follows redirects, as Mesos' fetcher does.
    fetch_client: reqwest::Client,
    /// Wakes the update sender.
    updates: Arc<Notify>,
    /// Held while a checkpoint is written, so writes of the same run or executor never race
    /// and the last one written is the latest state.
    checkpoints: Arc<Mutex<()>>,
}

impl Shared {
    /// The `dcos` binary whose `container-init` runs containers (and checks inside them).
    fn init_binary(&self) -> std::io::Result<PathBuf> {
        match &self.config.container_init {
            Some(path) => Ok(path.clone()),
            None => std::env::current_exe(),
        }
    }

    /// The environment a run's task (and its command health checks) gets.
    fn task_env(&self, run: &Run) -> Vec<(String, String)> {
        let agent_id = self.lock().id.clone().unwrap_or_default();
        let (framework_id, endpoint) = (run.framework_id(), self.endpoint());
        let place = self.place(
            &agent_id,
            &framework_id,
            &run.executor_id,
            &run.sandbox,
            &endpoint,
        );
        sandbox::task_env(&run.task, &place)
    }

    /// The container id of the run of `key` (empty if there is none).
    fn container_id_of(&self, key: &str) -> String {
        self.lock()
            .runs
            .get(key)
            .map(|r| r.container_id.clone())
            .unwrap_or_default()
    }

    /// Records a new run unless its task already runs here (a duplicate launch), which is
    /// logged with `duplicate` and left alone; whether it was recorded.
    fn admit(&self, run: &Run, duplicate: &str) -> bool {
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

    fn new(config: Config) -> Shared {
        let client = reqwest::Client::builder()
            // A standby master's 307 names the leader, which `master_loop` registers with.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let fetch_client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
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
            config: Arc::new(config),
            client,
            fetch_client,
            updates: Arc::new(Notify::new()),
            checkpoints: Arc::new(Mutex::new(())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, AgentState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_checkpoints(&self) -> MutexGuard<'_, ()> {
        self.checkpoints.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn meta_dir(&self) -> PathBuf {
        self.config.work_dir.join("meta")
    }

    fn host(&self) -> String {
        self.config.listen.ip().to_string()
    }

    fn endpoint(&self) -> String {
        self.config.listen.to_string()
    }

    /// Writes a run's latest state to its checkpoint, or removes the checkpoint once the run
    /// is terminal and acknowledged. `run` may be a stale snapshot: what is written is the
    /// run as it is now, so concurrent checkpoints of one run never leave an older state.
    fn checkpoint(&self, run: &Run) {
        let key = run.key();
        let _guard = self.lock_checkpoints();
        let current = {
            let st = self.lock();
            st.runs
                .get(&key)
                .or_else(|| st.runs.get(&format!("completed::{key}")))
                .cloned()
        };
        // A run no longer held (trimmed from the history) is only ever removed.
        let finished = || TaskState::is_terminal(run.state) && run.pending.is_empty();
        let Some(run) = current.or_else(|| finished().then(|| run.clone())) else {
            return;
        };
        let dir = self.meta_dir().join("tasks");
        let path = dir.join(format!("{key}.json"));
        let result = if TaskState::is_terminal(run.state) && run.pending.is_empty() {
            checkpoint::remove(&path)
        } else {
            serde_json::to_vec(&run)
                .map_err(std::io::Error::other)
                .and_then(|text| {
                    checkpoint::create_dir(&dir)?;
                    checkpoint::write_atomic(&path, &text)
                })
        };
        if let Err(e) = result {
            tracing::error!(error = %e, task = %key, "cannot checkpoint task");
        }
    }

    /// Queues a status update for a run from its executor (the built-in command executor).
    fn update(&self, key: &str, state: TaskState, message: Option<String>, reason: Option<Reason>) {
        self.report(key, state, message, reason, Source::Executor);
    }

    /// Queues a status update for a run, made by the agent on behalf of `source`.
    fn report(
        &self,
        key: &str,
        state: TaskState,
        message: Option<String>,
        reason: Option<Reason>,
        source: Source,
    ) {
        self.enqueue(
            key,
            TaskStatus {
                state,
                message,
                source: Some(source),
                reason,
                uuid: Some(api::new_update_uuid()),
                ..TaskStatus::default()
            },
        );
    }

    /// Records a run's new status, checkpoints it, and queues it for the master (sent and
    /// retried until acknowledged). False if the run is unknown or already terminal.
    fn enqueue(&self, key: &str, mut status: TaskStatus) -> bool {
        let mut st = self.lock();
        let agent_id = st.id.clone();
        let Some(run) = st.runs.get_mut(key) else {
            return false;
        };
        // A finished task stays finished: no later update may bring it back.
        if TaskState::is_terminal(run.state) {
            return false;
        }
        status.task_id = run.task.task_id.clone();
        status.agent_id = agent_id.map(Id::new);
        status.executor_id = Some(Id::new(&run.executor_id));
        status.timestamp.get_or_insert_with(api::now_secs);
        let state = status.state;
        if (state == TaskState::Running || state == TaskState::Starting)
            && status.container_status.is_none()
        {
            status.container_status = Some(json!({
                "container_id": {"value": run.container_id},
                "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": self.host()}]}],
                "executor_pid": run.pid,
            }));
        }
        // As Mesos' command executor: a kill for failed health checks ends unhealthy.
        if state == TaskState::Killed && run.health_killed {
            status.healthy = Some(false);
        }
        run.state = status.state;
        run.last_status = Some(status.clone());
        run.pending.push_back(status);
        let run = run.clone();
        drop(st);
        self.checkpoint(&run);
        self.updates.notify_one();
        true
    }
}

/// Binds the configured address and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    serve_on(listener, config, shutdown).await
}

/// Serves on an already-bound listener until `shutdown` is cancelled.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let addr = listener.local_addr().unwrap_or(config.listen);
    let mut config = config;
    config.listen = addr;
    fs_err::create_dir_all(config.work_dir.join("meta")).map_err(|source| Error::WorkDir {
        path: config.work_dir.clone(),
        source,
    })?;
    if config.images.is_none() {
        config.images = open_images(&config.work_dir, config.insecure_registries.clone());
    }
    let shared = Shared::new(config);
    recover(&shared);
    tracing::info!(%addr, "listening for Mesos agent requests");
    let server = dcos_serve::serve(listener, router(shared.clone()), LIMITS, shutdown.clone());
    // Graceful shutdown waits for every open response, and executors' event streams never
    // end on their own: a stopping agent ends them (checkpointing executors reconnect).
    tokio::spawn({
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            executor::disconnect_all(&shared);
        }
    });
    let master_loop = master_loop(shared.clone(), shutdown.clone());
    let sender = update_sender(shared.clone(), shutdown.clone());
    let images = container::collect_images(shared.config.images.clone(), shutdown.clone());
    tokio::join!(server, master_loop, sender, images);
    Ok(())
}

/// The image store at `<work_dir>/images`; without it, tasks in images fail (and say why).
fn open_images(
    work_dir: &Path,
    insecure_registries: Vec<String>,
) -> Option<Arc<dyn container::ImageStore>> {
    let opened = dcos_image::Store::open(&work_dir.join("images"), insecure_registries);
    // The layers hold images' setuid files and device-free but root-owned trees: only the
    // agent may reach them.
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
    if let Err(e) = std::fs::set_permissions(work_dir.join("images"), private) {
        tracing::warn!(error = %e, "cannot make the image store private");
    }
    match opened {
        Ok(store) => Some(Arc::new(container::RegistryImages(store))),
        Err(e) => {
            tracing::error!(error = %e, "cannot open the image store; tasks in images will fail");
            None
        }
    }
}

/// What 5051 allows: executors' event streams (one per executor), the master's and Admin
/// Router's calls, operators' reads of the files API; executor calls and launches are small.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api()
    .connections(4096)
    .body(16 * 1024 * 1024);

/// The checkpointed agent id and runs. Checkpoints are the agent's own, but a run whose ids
/// or sandbox would lead outside the work dir is ignored rather than trusted.
fn load_checkpoints(shared: &Shared) -> (Option<String>, Vec<Run>) {
    let meta = shared.meta_dir();
    let id = fs_err::read_to_string(meta.join("agent_id"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| match api::validate_id(s) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "invalid checkpointed agent id; registering anew");
                false
            }
        });
    let mut runs = Vec::new();
    let Ok(entries) = fs_err::read_dir(meta.join("tasks")) else {
        return (id, runs);
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match fs_err::read(&path).map(|b| serde_json::from_slice::<Run>(&b)) {
            Ok(Ok(run)) if run.is_sane(&shared.config.work_dir) => runs.push(run),
            _ => {
                tracing::warn!(path = %path.display(), "unreadable or invalid task checkpoint; ignoring it")
            }
        }
    }
    (id, runs)
}

/// Loads the agent id and checkpointed runs, re-attaching to tasks that still run.
fn recover(shared: &Shared) {
    let (id, runs) = load_checkpoints(shared);
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
    container::destroy_orphans(
        &shared.config.work_dir,
        &live,
        shared.config.images.as_ref(),
    );
    for run in runs {
        // A custom executor's tasks live and die with their executor, recovered above.
        if TaskState::is_terminal(run.state) || run.custom {
            continue;
        }
        let key = run.key();
        match run.process.filter(checkpoint::Process::is_running) {
            Some(process) => {
                tracing::info!(task = %key, pid = process.pid, "re-attached to running task");
                tokio::spawn(watch_recovered(shared.clone(), key, process));
            }
            None => {
                let (limitation, exit) = container::finish(
                    &shared.config.work_dir,
                    &run.container_id,
                    shared.config.images.as_ref(),
                );
                let (state, message, reason) = ended(&run.sandbox, run.killing, limitation, exit);
                tracing::info!(task = %key, %state, "task ended while the agent was down");
                shared.update(&key, state, Some(message), reason);
            }
        }
    }
}

/// How a task whose process is gone ended: a container's memory limitation, else what its
/// recorded exit status says.
fn ended(
    sandbox: &Path,
    killing: bool,
    limitation: Option<String>,
    container_exit: Option<i32>,
) -> (TaskState, String, Option<Reason>) {
    if let Some(message) = limitation.filter(|_| !killing) {
        return (
            TaskState::Failed,
            message,
            Some(Reason::ContainerLimitationMemory),
        );
    }
    let recorded = container_exit.or_else(|| recorded_exit(sandbox));
    let (state, message) = exit_status(recorded, killing);
    let reason = Some(Reason::CommandExecutorFailed).filter(|_| state == TaskState::Failed);
    (state, message, reason)
}

/// What a recorded exit status (the command executor's wrapper's file, or a container's
/// init's) says of how the task ended.
fn exit_status(recorded: Option<i32>, killing: bool) -> (TaskState, String) {
    if killing {
        return (
            TaskState::Killed,
            "Command terminated with signal Terminated".into(),
        );
    }
    match recorded {
        Some(0) => (TaskState::Finished, "Command exited with status 0".into()),
        Some(code) if code > 128 => (
            TaskState::Failed,
            format!("Command terminated with signal {}", signal_name(code - 128)),
        ),
        Some(code) => (TaskState::Failed, format!("Command exited with status {code}")),
        None => (
            TaskState::Failed,
            "Command terminated while the agent was down; its exit status is unknown".into(),
        ),
    }
}

/// The exit status the wrapper shell recorded in the sandbox. The task owns the sandbox, so
/// the file is opened without following a symlink and read only if it is a small regular
/// file (a FIFO there must not block the agent).
fn recorded_exit(sandbox: &Path) -> Option<i32> {
    use std::io::Read;
    let file = beneath::open(sandbox, Path::new(".exit_status")).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().trim_start_matches("SIG").to_string())
        .unwrap_or_else(|_| sig.to_string())
}

async fn watch_recovered(shared: Shared, key: String, process: checkpoint::Process) {
    let health = health::start(&shared, &key);
    let container_id = shared.container_id_of(&key);
    let gone = async {
        while process.is_running() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        () = gone => {}
        () = container::memory_limit_hit(&shared.config.work_dir, &container_id) => {
            tracing::info!(task = %key, "container hit its memory limit; destroying it");
            process.signal_group(Signal::SIGKILL);
            while process.is_running() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // No health verdict may follow the task's end.
    drop(health);
    let (sandbox, killing, container_id) = {
        let st = shared.lock();
        match st.runs.get(&key) {
            Some(r) => (r.sandbox.clone(), r.killing, r.container_id.clone()),
            None => return,
        }
    };
    let (limitation, exit) = finish_container(&shared, container_id).await;
    let (state, message, reason) = ended(&sandbox, killing, limitation, exit);
    shared.update(&key, state, Some(message), reason);
}

/// Destroys a run's container, if it is one, off the runtime's threads (removing cgroups
/// may wait for the container's last processes); its memory limitation, if it hit it.
async fn finish_container(shared: &Shared, container_id: String) -> (Option<String>, Option<i32>) {
    let (work_dir, images) = (shared.config.work_dir.clone(), shared.config.images.clone());
    tokio::task::spawn_blocking(move || {
        container::finish(&work_dir, &container_id, images.as_ref())
    })
    .await
    .unwrap_or_default()
}

// === the master connection ===

fn reports(shared: &Shared) -> Vec<TaskReport> {
    shared
        .lock()
        .runs
        .values()
        .filter(|r| !TaskState::is_terminal(r.state))
        .map(|r| TaskReport {
            framework: r.framework.clone(),
            task: r.task.clone(),
            state: r.state.clone(),
            status: r.last_status.clone(),
        })
        .collect()
}

/// The advertised resources: configured, minus ports something outside the agent holds.
fn advertised(shared: &Shared) -> Resources {
    let mut total = shared.config.resources.clone();
    let ours: RangeSet = shared
        .lock()
        .runs
        .values()
        .filter(|r| !TaskState::is_terminal(r.state))
        .fold(RangeSet::new(), |acc, r| {
            acc.union(&RangeSet::from_ranges(
                sandbox::task_ports(&r.task.resources)
                    .into_iter()
                    .map(|p| (p, p)),
            ))
        });
    let bound = bound_ports().subtract(&ours);
    total.ports = total.ports.subtract(&bound);
    total
}

/// Ports bound on this host (its network namespace), TCP listeners and UDP sockets.
fn bound_ports() -> RangeSet {
    let mut set = RangeSet::new();
    for (file, state) in [
        ("/proc/net/tcp", "0A"),
        ("/proc/net/tcp6", "0A"),
        ("/proc/net/udp", "07"),
        ("/proc/net/udp6", "07"),
    ] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(3) != Some(&state) {
                continue;
            }
            if let Some(port) = cols
                .get(1)
                .and_then(|l| l.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            {
                set.insert(port, port);
            }
        }
    }
    set
}

async fn master_loop(shared: Shared, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    let mut i = 0usize;
    // The leader a standby master named, tried next without waiting.
    let mut redirected: Option<SocketAddr> = None;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let masters = &shared.config.masters;
        if masters.is_empty() {
            tracing::error!("no masters configured");
            return;
        }
        let master = redirected.take().unwrap_or_else(|| {
            i += 1;
            masters[(i - 1) % masters.len()]
        });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = follow_master(&shared, master) => {
                match result {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => match e.downcast::<Redirected>() {
                        Ok(Redirected(leader)) => {
                            tracing::debug!(%master, %leader, "a standby master named the leader");
                            redirected = Some(leader);
                            shared.lock().master = None;
                            continue;
                        }
                        Err(e) => tracing::debug!(%master, error = %e, "master connection failed"),
                    },
                }
            }
        }
        shared.lock().master = None;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// A standby master's 307: the leader to register with instead.
#[derive(Debug, thiserror::Error)]
#[error("redirected to the leading master {0}")]
struct Redirected(SocketAddr);

/// The leader a standby's 307 names (`//ip:port/...`).
fn redirect_target(resp: &reqwest::Response) -> Option<SocketAddr> {
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    let rest = location.trim_start_matches("http:").strip_prefix("//")?;
    rest.split('/').next()?.parse().ok()
}

async fn follow_master(shared: &Shared, master: SocketAddr) -> anyhow::Result<()> {
    let resources = advertised(shared);
    let agent_id = shared.lock().id.clone().map(Id::new);
    let call = AgentCall::Subscribe {
        agent_id,
        info: AgentInfo {
            hostname: shared.host(),
            port: shared.config.listen.port(),
            resources: resources.to_api(None),
            attributes: shared.config.attributes.clone(),
            version: crate::MESOS_VERSION.into(),
        },
        tasks: reports(shared),
    };
    let resp = shared
        .client
        .post(format!("http://{master}{AGENT_API_PATH}"))
        .json(&call)
        .send()
        .await?;
    if resp.status() == reqwest::StatusCode::TEMPORARY_REDIRECT {
        if let Some(leader) = redirect_target(&resp) {
            return Err(Redirected(leader).into());
        }
    }
    if !resp.status().is_success() {
        anyhow::bail!(
            "master answered {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let mut body = resp.bytes_stream();
    let mut decoder = recordio::Decoder::new();
    loop {
        let chunk = tokio::time::timeout(MASTER_SILENCE, body.next())
            .await
            .map_err(|_| anyhow::anyhow!("master silent for {MASTER_SILENCE:?}"))?;
        let Some(chunk) = chunk else {
            anyhow::bail!("master closed the stream")
        };
        decoder.feed(&chunk?);
        while let Some(record) = decoder.next_record()? {
            let event: Value = serde_json::from_slice(&record)?;
            match AgentEvent::deserialize(&event) {
                Ok(event) => handle_event(shared, master, event),
                // One bad event (an invalid id, say) must not cost the connection.
                Err(e) => refuse_event(shared, &event, &e.to_string()),
            }
        }
    }
}

fn handle_event(shared: &Shared, master: SocketAddr, event: AgentEvent) {
    match event {
        AgentEvent::Registered { agent_id, .. } => {
            let path = shared.meta_dir().join("agent_id");
            if let Err(e) = checkpoint::write_atomic(&path, agent_id.value.as_bytes()) {
                tracing::error!(error = %e, "cannot checkpoint the agent id");
            }
            {
                let mut st = shared.lock();
                st.id = Some(agent_id.value.clone());
                st.master = Some(master);
                for run in st.runs.values_mut() {
                    run.last_sent = None;
                }
            }
            tracing::info!(agent_id = %agent_id.value, %master, "registered with master");
            shared.updates.notify_one();
        }
        AgentEvent::RunTask { framework, task } => launch(shared, framework, task),
        AgentEvent::KillTask {
            framework_id,
            task_id,
            grace_period_ns,
        } => {
            let key = format!("{}__{}", framework_id.value, task_id.value);
            let grace = grace_period_ns.map(|n| Duration::from_nanos(n.max(0) as u64));
            if shared.lock().runs.get(&key).is_some_and(|r| r.custom) {
                executor::kill_task(shared, &key, grace);
            } else {
                kill(shared, &key, grace);
            }
        }
        AgentEvent::Acknowledge {
            framework_id,
            task_id,
            uuid,
        } => {
            let key = format!("{}__{}", framework_id.value, task_id.value);
            let (run, acked) = {
                let mut st = shared.lock();
                let Some(run) = st.runs.get_mut(&key) else {
                    return;
                };
                if run.pending.front().and_then(|s| s.uuid.as_deref()) != Some(uuid.as_str()) {
                    return;
                }
                let acked = run.pending.pop_front();
                let run = run.clone();
                if TaskState::is_terminal(run.state) && run.pending.is_empty() {
                    st.runs.remove(&key);
                    completed(&mut st, run.clone());
                }
                (run, acked)
            };
            shared.checkpoint(&run);
            shared.updates.notify_one();
            if let Some(status) = acked.filter(|_| run.custom) {
                executor::acknowledged(shared, &run, status);
            }
        }
        AgentEvent::ShutdownFramework { framework_id } => {
            executor::shutdown_framework(shared, &framework_id.value);
            let keys: Vec<String> = shared
                .lock()
                .runs
                .values()
                .filter(|r| r.framework_id() == framework_id.value && !r.custom)
                .map(Run::key)
                .collect();
            for key in keys {
                kill(shared, &key, None);
            }
        }
        AgentEvent::FrameworkMessage {
            framework_id,
            executor_id,
            data,
        } => executor::message(shared, &framework_id.value, &executor_id.value, data),
        AgentEvent::Heartbeat => {}
    }
}

/// Keeps a bounded history of completed runs for `/state`.
fn completed(st: &mut AgentState, run: Run) {
    let key = format!("completed::{}", run.key());
    st.runs.insert(key, run);
    let done: Vec<String> = st
        .runs
        .keys()
        .filter(|k| k.starts_with("completed::"))
        .cloned()
        .collect();
    for k in done.iter().take(done.len().saturating_sub(1000)) {
        st.runs.remove(k);
    }
}

/// Sends the head of every run's update queue to the master, now and every retry period.
async fn update_sender(shared: Shared, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = shared.updates.notified() => {}
            _ = tokio::time::sleep(UPDATE_RETRY) => {}
        }
        let (master, agent_id, heads) = {
            let mut st = shared.lock();
            let now = std::time::Instant::now();
            let heads: Vec<(String, TaskStatus)> = st
                .runs
                .iter_mut()
                .filter(|(k, _)| !k.starts_with("completed::"))
                .filter_map(|(_, r)| {
                    let head = r.pending.front()?.clone();
                    let uuid = head.uuid.clone().unwrap_or_default();
                    let due = match &r.last_sent {
                        Some((sent, at)) => {
                            *sent != uuid || now.duration_since(*at) >= UPDATE_RETRY
                        }
                        None => true,
                    };
                    due.then(|| {
                        r.last_sent = Some((uuid, now));
                        (r.framework_id(), head)
                    })
                })
                .collect();
            (st.master, st.id.clone(), heads)
        };
        let (Some(master), Some(agent_id)) = (master, agent_id) else {
            continue;
        };
        for (framework_id, status) in heads {
            let call = AgentCall::Update {
                agent_id: Id::new(&agent_id),
                framework_id: Id::new(framework_id),
                status,
            };
            let url = format!("http://{master}{AGENT_API_PATH}");
            if let Err(e) = shared
                .client
                .post(&url)
                .timeout(Duration::from_secs(5))
                .json(&call)
                .send()
                .await
            {
                tracing::debug!(error = %e, "status update not delivered; will retry");
            }
        }
    }
}

// === running tasks ===

fn launch(shared: &Shared, framework: FrameworkInfo, task: TaskInfo) {
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
    let agent_id = shared.lock().id.clone().unwrap_or_default();
    let sandbox = match sandbox::sandbox_dir(
        &shared.config.work_dir,
        &agent_id,
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
            Ok(child) => supervise(shared, key, child).await,
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
fn refuse(shared: &Shared, framework: FrameworkInfo, task: TaskInfo, executor_id: &str, why: &str) {
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

/// An event the agent could not decode. A RUN_TASK whose framework and task ids are valid is
/// answered with TASK_ERROR (an invalid executor id, say); anything else is only logged.
fn refuse_event(shared: &Shared, event: &Value, why: &str) {
    if event.get("type").and_then(Value::as_str) != Some("RUN_TASK") {
        tracing::warn!(
            error = why,
            "ignoring an event from the master that cannot be decoded"
        );
        return;
    }
    let id = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(Value::as_str)
            .and_then(|v| Id::parse(v).ok())
    };
    let (Some(framework_id), Some(task_id)) =
        (id("/framework/id/value"), id("/task/task_id/value"))
    else {
        tracing::warn!(error = why, "refused a task that cannot be reported");
        return;
    };
    let framework =
        FrameworkInfo::deserialize(&event["framework"]).unwrap_or_else(|_| FrameworkInfo {
            id: Some(framework_id),
            ..FrameworkInfo::default()
        });
    // Checkpointed with the refusal, so every id in it must parse again on recovery.
    let agent_id = Id::parse(shared.lock().id.clone().unwrap_or_default()).unwrap_or_default();
    let task = TaskInfo {
        agent_id,
        name: event
            .pointer("/task/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        task_id,
        ..TaskInfo::default()
    };
    let executor_id = event
        .pointer("/task/executor/executor_id/value")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    refuse(
        shared,
        framework,
        task,
        &executor_id,
        &format!("an id in it is invalid: {why}"),
    );
}

impl Shared {
    /// Where an executor of `framework_id` runs, for its environment.
    fn place<'a>(
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

/// Runs a command task under the built-in command executor: as its user, in its sandbox,
/// with its URIs fetched.
async fn start(shared: &Shared, run: &Run) -> anyhow::Result<tokio::process::Child> {
    let key = run.key();
    let task = &run.task;
    let command = task.command.clone().unwrap_or_default();
    let image = container::image_of(task).map_err(anyhow::Error::msg)?;
    let user = launcher::requested_user(&run.framework, &command);
    // A container's user is one of its image, not of the host.
    let run_as = match image {
        Some(_) => None,
        None => launcher::run_as(shared.config.switch_user, user)?,
    };
    fetcher::fetch_uris(shared, &command, &run.sandbox).await?;
    let env = shared.task_env(run);
    let mut child = match &image {
        Some(image) => {
            let init = shared.init_binary()?;
            let launch = container::Launch {
                work_dir: &shared.config.work_dir,
                images: shared.config.images.as_ref(),
                init: &init,
                container_id: &run.container_id,
                task,
                user: user.filter(|_| shared.config.switch_user),
                sandbox: &run.sandbox,
                env,
            };
            container::launch(launch, image).await?
        }
        None => launcher::spawn_command(&command, &run.sandbox, env, run_as.as_ref())?,
    };
    let pid = child.id();
    let run_container_id = run.container_id.clone();
    let process = pid.and_then(checkpoint::Process::of);
    let run = {
        let mut st = shared.lock();
        // Killed (or gone) while its URIs were fetched: the process must not outlive that.
        st.runs
            .get_mut(&key)
            .filter(|r| !TaskState::is_terminal(r.state) && !r.killing)
            .map(|run| {
                run.pid = pid;
                run.process = process.clone();
                run.clone()
            })
    };
    let Some(run) = run else {
        // Not yet reaped, so the pid is still this child's.
        if let Some(pid) = pid {
            let _ = killpg(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let _ = child.wait().await;
        finish_container(shared, run_container_id).await;
        anyhow::bail!("task was killed before it started")
    };
    shared.checkpoint(&run);
    let note = image
        .filter(|i| i.docker)
        .map(|_| container::DOCKER_ON_UCR.to_string());
    shared.update(&key, TaskState::Starting, None, None);
    shared.update(&key, TaskState::Running, note, None);
    tracing::info!(task = %key, pid, user = user.unwrap_or_default(), "task running");
    Ok(child)
}

async fn supervise(shared: Shared, key: String, mut child: tokio::process::Child) {
    let health = health::start(&shared, &key);
    let container_id = shared.container_id_of(&key);
    let status = tokio::select! {
        status = child.wait() => status,
        () = container::memory_limit_hit(&shared.config.work_dir, &container_id) => {
            // The whole container goes: its init leads the process group, and the kernel
            // ends every process of a pid namespace whose init dies.
            tracing::info!(task = %key, "container hit its memory limit; destroying it");
            if let Some(pid) = child.id() {
                let _ = killpg(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            child.wait().await
        }
    };
    // No health verdict may follow the task's end.
    drop(health);
    let (killing, sandbox) = {
        let st = shared.lock();
        let run = st.runs.get(&key);
        (
            run.is_some_and(|r| r.killing),
            run.map(|r| r.sandbox.clone()).unwrap_or_default(),
        )
    };
    let (limitation, _) = finish_container(&shared, container_id).await;
    let (state, message, reason) = match status {
        _ if killing => (
            TaskState::Killed,
            "Command terminated with signal Terminated".to_string(),
            None,
        ),
        _ if limitation.is_some() => (
            TaskState::Failed,
            limitation.unwrap_or_default(),
            Some(Reason::ContainerLimitationMemory),
        ),
        Ok(s) if s.success() => (TaskState::Finished, "Command exited with status 0".into(), None),
        Ok(s) => (
            TaskState::Failed,
            launcher::describe_exit(s, recorded_exit(&sandbox)),
            Some(Reason::CommandExecutorFailed),
        ),
        Err(e) => (
            TaskState::Failed,
            format!("Failed to wait for the task: {e}"),
            Some(Reason::ExecutorTerminated),
        ),
    };
    tracing::info!(task = %key, %state, %message, "task ended");
    shared.update(&key, state, Some(message), reason);
}

fn kill(shared: &Shared, key: &str, grace: Option<Duration>) {
    let (target, grace) = {
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
        let target = match (&run.process, run.pid) {
            (Some(process), _) => Some(Some(process.clone())),
            (None, Some(_)) => Some(None),
            (None, None) => None,
        };
        (target, grace.or(policy).unwrap_or(DEFAULT_KILL_GRACE))
    };
    shared.update(key, TaskState::Killing, None, None);
    let process = match target {
        Some(Some(process)) => process,
        Some(None) => {
            // A pid the agent could not identify is never signalled: it may be another's.
            tracing::warn!(task = %key, "the task's process cannot be identified; not signalling it");
            return;
        }
        None => {
            shared.update(
                key,
                TaskState::Killed,
                Some("Task killed before it started".into()),
                None,
            );
            return;
        }
    };
    process.signal_group(Signal::SIGTERM);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        process.signal_group(Signal::SIGKILL);
    });
}

// === HTTP ===

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/state", get(state))
        .route("/state.json", get(state))
        .route("/slave(1)/state", get(state))
        .route("/slave(1)/state.json", get(state))
        .route("/files/browse", get(files::browse))
        .route("/files/browse.json", get(files::browse))
        .route("/files/read", get(files::read_file))
        .route("/files/read.json", get(files::read_file))
        .route("/files/download", get(files::download))
        .route("/files/download.json", get(files::download))
        .route("/monitor/statistics", get(statistics))
        .route("/monitor/statistics.json", get(statistics))
        .route("/containers", get(containers))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/slave(1)/health", get(|| async { StatusCode::OK }))
        .route(
            "/version",
            get(|| async { Json(crate::master::views::version()) }),
        )
        .route("/api/v1", post(operator))
        .route("/api/v1/executor", post(executor::api))
        .with_state(shared)
}

fn task_json(run: &Run, agent_id: &str) -> Value {
    json!({
        "id": run.task.task_id.value,
        "name": run.task.name,
        "framework_id": run.framework_id(),
        "executor_id": if run.task.executor.is_some() { run.executor_id.clone() } else { String::new() },
        "slave_id": agent_id,
        "state": run.state,
        "resources": Resources::from_api(&run.task.resources).unwrap_or_default().to_state_json(),
        "statuses": run.last_status.iter().map(|s| {
            let mut v = json!({"state": s.state, "timestamp": s.timestamp, "container_status": s.container_status});
            if let Some(healthy) = s.healthy {
                v["healthy"] = json!(healthy);
            }
            v
        }).collect::<Vec<_>>(),
        "labels": run.task.labels.as_ref().and_then(|l| l.get("labels").cloned()).unwrap_or(json!([])),
        "discovery": run.task.discovery,
    })
}

async fn state(State(shared): State<Shared>) -> Response {
    let st = shared.lock();
    let agent_id = st.id.clone().unwrap_or_default();
    // Runs grouped by framework, then by container (one executor run each): a command task
    // has its own, a custom executor's tasks share theirs.
    type Containers<'a> = BTreeMap<String, Vec<&'a Run>>;
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
    let frameworks: Vec<Value> = frameworks
        .into_iter()
        .map(|(id, (info, containers))| {
            let (mut live, mut done) = (Vec::new(), Vec::new());
            for runs in containers.values() {
                let first = runs[0];
                let (tasks, completed): (Vec<&Run>, Vec<&Run>) = runs
                    .iter()
                    .partition(|r| !TaskState::is_terminal(r.state));
                let name = match (&first.task.executor, first.custom) {
                    (Some(e), true) => e.name.clone().unwrap_or_default(),
                    _ => format!(
                        "Command Executor (Task: {}) (Command: sh -c '{}')",
                        first.task.task_id.value,
                        first.task.command.as_ref().and_then(|c| c.value.clone()).unwrap_or_default()
                    ),
                };
                let executor = json!({
                    "id": first.executor_id,
                    "name": name,
                    "source": if first.custom { String::new() } else { first.task.task_id.value.clone() },
                    "container": first.container_id,
                    "directory": first.sandbox.display().to_string(),
                    "resources": runs.iter().fold(Resources::default(), |acc, r| acc.add(&Resources::from_api(&r.task.resources).unwrap_or_default())).to_state_json(),
                    "framework_id": id,
                    "tasks": tasks.iter().map(|r| task_json(r, &agent_id)).collect::<Vec<_>>(),
                    "queued_tasks": [],
                    "completed_tasks": completed.iter().map(|r| task_json(r, &agent_id)).collect::<Vec<_>>(),
                });
                if tasks.is_empty() {
                    done.push(executor);
                } else {
                    live.push(executor);
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
        .collect();
    let mut v = crate::master::views::version();
    let extra = json!({
        "start_time": st.start_time,
        "id": agent_id,
        "pid": format!("slave(1)@{}", shared.endpoint()),
        "hostname": shared.host(),
        "resources": shared.config.resources.to_state_json(),
        "attributes": shared.config.attributes,
        "master_hostname": st.master.map(|m| m.ip().to_string()),
        "flags": {"work_dir": shared.config.work_dir.display().to_string(), "port": shared.config.listen.port().to_string(), "master": shared.config.masters.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(",")},
        "frameworks": frameworks,
        "completed_frameworks": [],
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    Json(v).into_response()
}

/// CPU times and RSS of a process tree's leader from /proc.
fn proc_stats(pid: u32) -> Value {
    let ticks = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let page = 4096.0;
    json!({
        "timestamp": api::now_secs(),
        "cpus_user_time_secs": (num(11) + num(13)) / ticks,
        "cpus_system_time_secs": (num(12) + num(14)) / ticks,
        "mem_rss_bytes": (num(21) * page) as u64,
    })
}

fn live_runs(st: &AgentState) -> Vec<&Run> {
    st.runs
        .iter()
        .filter(|(k, r)| !k.starts_with("completed::") && !TaskState::is_terminal(r.state))
        .map(|(_, r)| r)
        .collect()
}

async fn statistics(State(shared): State<Shared>) -> Response {
    let st = shared.lock();
    let out: Vec<Value> = live_runs(&st)
        .iter()
        .map(|r| {
            let res = Resources::from_api(&r.task.resources).unwrap_or_default();
            let mut s = r.pid.map(proc_stats).unwrap_or_else(|| json!({}));
            s["cpus_limit"] = json!(res.cpus);
            s["mem_limit_bytes"] = json!((res.mem * 1_048_576.0) as u64);
            json!({"executor_id": r.executor_id, "executor_name": r.task.name, "framework_id": r.framework_id(), "source": r.task.task_id.value, "statistics": s})
        })
        .collect();
    Json(out).into_response()
}

async fn containers(State(shared): State<Shared>) -> Response {
    let st = shared.lock();
    let out: Vec<Value> = live_runs(&st)
        .iter()
        .map(|r| {
            json!({
                "container_id": r.container_id,
                "executor_id": r.executor_id,
                "executor_name": r.task.name,
                "framework_id": r.framework_id(),
                "source": r.task.task_id.value,
                "status": {"container_id": {"value": r.container_id}, "executor_pid": r.pid, "network_infos": [{"ip_addresses": [{"ip_address": shared.host()}]}]},
                "statistics": r.pid.map(proc_stats),
            })
        })
        .collect();
    Json(out).into_response()
}

async fn operator(State(shared): State<Shared>, body: Bytes) -> Response {
    let call: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body into Call protobuf: {e}"),
            )
                .into_response()
        }
    };
    let kind = call.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "GET_HEALTH" => Json(json!({"type": "GET_HEALTH", "get_health": {"healthy": true}})).into_response(),
        "GET_VERSION" => Json(json!({"type": "GET_VERSION", "get_version": {"version_info": crate::master::views::version()}})).into_response(),
        "GET_CONTAINERS" => {
            let st = shared.lock();
            let list: Vec<Value> = live_runs(&st)
                .iter()
                .map(|r| json!({"framework_id": {"value": r.framework_id()}, "executor_id": {"value": r.executor_id}, "executor_name": r.task.name, "container_id": {"value": r.container_id}, "container_status": {"executor_pid": r.pid}}))
                .collect();
            Json(json!({"type": "GET_CONTAINERS", "get_containers": {"containers": list}})).into_response()
        }
        "GET_STATE" => {
            let st = shared.lock();
            let agent_id = st.id.clone().unwrap_or_default();
            let tasks: Vec<Value> = live_runs(&st)
                .iter()
                .map(|r| json!({"name": r.task.name, "task_id": r.task.task_id, "framework_id": {"value": r.framework_id()}, "agent_id": {"value": agent_id}, "state": r.state, "resources": r.task.resources, "statuses": r.last_status.iter().collect::<Vec<_>>()}))
                .collect();
            let mut fws: Vec<Value> = live_runs(&st).iter().map(|r| json!({"framework_info": r.framework})).collect();
            fws.dedup();
            Json(json!({"type": "GET_STATE", "get_state": {"get_tasks": {"tasks": tasks, "completed_tasks": [], "queued_tasks": [], "launched_tasks": []}, "get_frameworks": {"frameworks": fws}, "get_executors": {"executors": []}}})).into_response()
        }
        "" => (StatusCode::BAD_REQUEST, "Failed to validate agent::Call: Expecting 'type' to be present").into_response(),
        other => (StatusCode::NOT_IMPLEMENTED, format!("Operator call {other} is not supported by dcos-rs")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    /// An agent's state over `work_dir` with one running task checkpointed, its process
    /// recorded as `process`.
    fn checkpointed(work_dir: &Path, process: checkpoint::Process) -> (Shared, String) {
        let shared = Shared::new(Config {
            work_dir: work_dir.to_path_buf(),
            ..Config::default()
        });
        let sandbox = sandbox::sandbox_dir(work_dir, "agent", "fw", "task", "container").unwrap();
        std::fs::create_dir_all(&sandbox).unwrap();
        let run = Run {
            framework: FrameworkInfo {
                id: Some(Id::new("fw")),
                ..FrameworkInfo::default()
            },
            task: TaskInfo {
                task_id: Id::new("task"),
                agent_id: Id::new("agent"),
                ..TaskInfo::default()
            },
            executor_id: "task".into(),
            container_id: "container".into(),
            sandbox,
            pid: Some(process.pid),
            process: Some(process),
            state: TaskState::Running,
            killing: false,
            pending: VecDeque::new(),
            last_status: None,
            started: 0.0,
            custom: false,
            health_killed: false,
            last_sent: None,
        };
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

    #[tokio::test]
    async fn recovery_never_takes_a_reused_pid_for_its_task() {
        let dir = tempfile::tempdir().unwrap();
        let mut other = sleeper();
        let mut identity = checkpoint::Process::of(other.id()).unwrap();
        // The checkpoint recorded a process that started at another time under this pid.
        identity.start_time += 1;
        let (shared, key) = checkpointed(dir.path(), identity);
        recover(&shared);
        let state = shared.lock().runs.get(&key).map(|r| r.state.clone());
        assert_eq!(state.as_deref(), Some(TaskState::Failed));
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
        let identity = checkpoint::Process::of(task.id()).unwrap();
        let (shared, key) = checkpointed(dir.path(), identity);
        recover(&shared);
        let state = shared.lock().runs.get(&key).map(|r| r.state.clone());
        assert_eq!(state.as_deref(), Some(TaskState::Running));
        kill(&shared, &key, Some(Duration::ZERO));
        let status = tokio::task::spawn_blocking(move || task.wait().unwrap())
            .await
            .unwrap();
        assert!(!status.success());
    }
}
