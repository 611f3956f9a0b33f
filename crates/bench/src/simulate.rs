//! Simulated agents: many agents in one process, for benchmarks and scale tests
//! (`dcos-bench simulate-agents`, and the launch, footprint and offers scenarios).
//!
//! Each simulated agent speaks exactly the agent protocol a real agent speaks (SUBSCRIBE to
//! `/api/v1/agent`, a RecordIO event stream, UPDATE calls for its tasks), with
//! its own id, hostname and resources, so the master cannot tell it from a real one. Its
//! containerizer is simulated: a launched task goes TASK_STARTING then, after a configurable
//! delay, TASK_RUNNING (or TASK_FAILED, for every n-th task when failures are asked for), and
//! stays running until killed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use dcos_mesos::api::{self, Id, Reason, Source, TaskState, TaskStatus};
use dcos_mesos::protocol::{AgentCall, AgentEvent, AgentInfo, AGENT_API_PATH};
use dcos_mesos::recordio;
use dcos_mesos::resources::Resources;

/// What the simulated agents look like.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The master (`ip:5050`).
    pub master: SocketAddr,
    /// Each agent's resources.
    pub resources: Resources,
    /// How long a task takes from launch to TASK_RUNNING.
    pub start_delay: Duration,
    /// Agent `n` is named `<hostname_prefix>-<n>`.
    pub hostname_prefix: String,
    /// Every `fail_every`-th launched task (counted across all agents) goes TASK_FAILED
    /// instead of TASK_RUNNING; 0 never fails one.
    pub fail_every: u64,
}

impl Spec {
    /// Agents of `master` with `resources`, named `sim-<n>`, whose tasks start after
    /// `start_delay` and never fail.
    pub fn new(master: SocketAddr, resources: Resources, start_delay: Duration) -> Spec {
        Spec {
            master,
            resources,
            start_delay,
            hostname_prefix: "sim".into(),
            fail_every: 0,
        }
    }
}

/// What the simulated containerizers have done, across all agents.
#[derive(Debug, Default)]
pub struct Counts {
    /// Tasks launched.
    pub launched: AtomicU64,
    /// Tasks that went TASK_RUNNING.
    pub running: AtomicU64,
    /// Tasks made to fail.
    pub failed: AtomicU64,
    /// Tasks killed.
    pub killed: AtomicU64,
}

/// Running simulated agents; dropping them does not stop them, [`Agents::stop`] does.
pub struct Agents {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    counts: Arc<Counts>,
}

impl Agents {
    /// What their containerizers have done so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Stops every agent and waits for them.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Status updates in flight at once, across all agents. A real agent sends its updates over
/// its own connection one after another; unbounded, a launch of 100,000 tasks would open as
/// many connections to the master at once.
const UPDATES_IN_FLIGHT: usize = 256;

/// How long registration may take: a minute, and more for many agents (the master writes
/// each admission to its registry).
pub fn registration_deadline(count: usize) -> Duration {
    Duration::from_secs(60).max(Duration::from_millis(20) * count as u32)
}

/// Starts `count` simulated agents and returns once all have registered.
pub async fn start(spec: Spec, count: usize) -> anyhow::Result<Agents> {
    let stop = CancellationToken::new();
    // No TCP keepalive: the master's heartbeats on the event stream show the master is
    // alive. With keepalive, thousands of connections made in the same seconds probe
    // in the same instant, loopback drops most of the burst, and the agents give up together.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_keepalive(None)
        .tcp_keepalive_interval(None)
        .tcp_keepalive_retries(None)
        .build()?;
    let counts = Arc::new(Counts::default());
    let sending = Arc::new(tokio::sync::Semaphore::new(UPDATES_IN_FLIGHT));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(count.max(1));
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let agent = Agent {
            spec: spec.clone(),
            client: client.clone(),
            counts: counts.clone(),
            sending: sending.clone(),
            n,
        };
        let (stop, ready) = (stop.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                r = agent.run(ready) => if let Err(e) = r {
                    tracing::warn!(agent = n, error = format!("{e:#}"), "simulated agent ended");
                }
            }
        }));
    }
    drop(ready_tx);
    let deadline = registration_deadline(count);
    let registered = async {
        for _ in 0..count {
            ready_rx
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("a simulated agent failed to register"))?;
        }
        anyhow::Ok(())
    };
    let outcome = tokio::time::timeout(deadline, registered)
        .await
        .map_err(|_| anyhow::anyhow!("simulated agents did not all register within {deadline:?}"))
        .and_then(|r| r);
    let agents = Agents {
        stop,
        tasks,
        counts,
    };
    if let Err(e) = outcome {
        agents.stop().await;
        return Err(e);
    }
    Ok(agents)
}

/// One simulated agent.
struct Agent {
    spec: Spec,
    client: reqwest::Client,
    counts: Arc<Counts>,
    sending: Arc<tokio::sync::Semaphore>,
    n: usize,
}

impl Agent {
    async fn run(self, ready: tokio::sync::mpsc::Sender<()>) -> anyhow::Result<()> {
        let Agent {
            spec,
            client,
            counts,
            sending,
            n,
        } = self;
        let url = format!("http://{}{AGENT_API_PATH}", spec.master);
        let call = AgentCall::Subscribe {
            agent_id: None,
            info: AgentInfo {
                hostname: format!("{}-{n}", spec.hostname_prefix),
                port: 5051,
                resources: spec.resources.to_api(None),
                attributes: Default::default(),
                version: dcos_mesos::MESOS_VERSION.into(),
            },
            tasks: Vec::new(),
        };
        let resp = client
            .post(&url)
            .json(&call)
            .send()
            .await?
            .error_for_status()?;
        let mut body = resp.bytes_stream();
        let mut decoder = recordio::Decoder::new();
        let mut agent_id = None;
        while let Some(chunk) = body.next().await {
            decoder.feed(&chunk?);
            while let Some(record) = decoder.next_record()? {
                match serde_json::from_slice::<AgentEvent>(&record)? {
                    AgentEvent::Registered { agent_id: id, .. } => {
                        agent_id = Some(id);
                        let _ = ready.send(()).await;
                    }
                    AgentEvent::RunTask { framework, task } => {
                        let (Some(agent_id), Some(fw)) = (agent_id.clone(), framework.id) else {
                            continue;
                        };
                        let (client, url, delay) = (client.clone(), url.clone(), spec.start_delay);
                        let launched = counts.launched.fetch_add(1, Ordering::Relaxed) + 1;
                        let fails = spec.fail_every > 0 && launched % spec.fail_every == 0;
                        let (counts, sending) = (counts.clone(), sending.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let Ok(_permit) = sending.acquire().await else {
                                return;
                            };
                            let last = if fails {
                                TaskState::Failed
                            } else {
                                TaskState::Running
                            };
                            for state in [TaskState::Starting, last] {
                                let mut status = TaskStatus {
                                    task_id: task.task_id.clone(),
                                    state,
                                    source: Some(Source::Executor),
                                    agent_id: Some(agent_id.clone()),
                                    executor_id: Some(task.task_id.clone()),
                                    timestamp: Some(api::now_secs()),
                                    uuid: Some(api::new_update_uuid()),
                                    ..TaskStatus::default()
                                };
                                if state == TaskState::Failed {
                                    status.message = Some("simulated failure".into());
                                    status.reason = Some(Reason::CommandExecutorFailed);
                                }
                                send_update(&client, &url, &agent_id, &fw, status).await;
                            }
                            let counter = if fails {
                                &counts.failed
                            } else {
                                &counts.running
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                    AgentEvent::KillTask {
                        framework_id,
                        task_id,
                        ..
                    } => {
                        let Some(agent_id) = agent_id.clone() else {
                            continue;
                        };
                        let status = TaskStatus {
                            task_id,
                            state: TaskState::Killed,
                            source: Some(Source::Executor),
                            agent_id: Some(agent_id.clone()),
                            timestamp: Some(api::now_secs()),
                            uuid: Some(api::new_update_uuid()),
                            ..TaskStatus::default()
                        };
                        let (client, url) = (client.clone(), url.clone());
                        counts.killed.fetch_add(1, Ordering::Relaxed);
                        let sending = sending.clone();
                        tokio::spawn(async move {
                            let Ok(_permit) = sending.acquire().await else {
                                return;
                            };
                            send_update(&client, &url, &agent_id, &framework_id, status).await;
                        });
                    }
                    // Acknowledgements end retries on a real agent; the simulation sends once
                    // over a reliable loopback connection.
                    _ => {}
                }
            }
        }
        anyhow::bail!("the master closed the stream")
    }
}

async fn send_update(
    client: &reqwest::Client,
    url: &str,
    agent_id: &Id,
    framework_id: &Id,
    status: TaskStatus,
) {
    let call = AgentCall::Update {
        agent_id: agent_id.clone(),
        framework_id: framework_id.clone(),
        status,
    };
    if let Err(e) = client.post(url).json(&call).send().await {
        tracing::warn!(
            error = format!("{:#}", anyhow::Error::from(e)),
            "simulated update not delivered"
        );
    }
}
