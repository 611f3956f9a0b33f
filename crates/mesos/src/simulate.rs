//! Simulated agents: many agents in one process, for benchmarks and scale tests.
//!
//! Each simulated agent speaks exactly the agent protocol a real agent speaks (SUBSCRIBE to
//! `/api/v1/agent`, a RecordIO event stream, UPDATE calls for its tasks), with
//! its own id, hostname and resources, so the master cannot tell it from a real one. Its
//! containerizer is simulated: a launched task goes TASK_STARTING then TASK_RUNNING after a
//! configurable delay, and stays running until killed.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Id, TaskStatus};
use crate::protocol::{AgentCall, AgentEvent, AgentInfo, AGENT_API_PATH};
use crate::recordio;
use crate::resources::Resources;

/// What the simulated agents look like.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The master (`ip:5050`).
    pub master: SocketAddr,
    /// Each agent's resources.
    pub resources: Resources,
    /// How long a task takes from launch to TASK_RUNNING.
    pub start_delay: Duration,
}

/// Running simulated agents; dropping them does not stop them, [`Agents::stop`] does.
pub struct Agents {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Agents {
    /// Stops every agent and waits for them.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts `count` simulated agents, named `sim-<n>`, and returns once all have registered.
pub async fn start(spec: Spec, count: usize) -> anyhow::Result<Agents> {
    let stop = CancellationToken::new();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(count.max(1));
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let (spec, client, stop, ready) =
            (spec.clone(), client.clone(), stop.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                r = run(spec, client, n, ready) => if let Err(e) = r {
                    tracing::warn!(agent = n, error = %e, "simulated agent ended");
                }
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..count {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .map_err(|_| anyhow::anyhow!("simulated agents did not all register within 60 s"))?
            .ok_or_else(|| anyhow::anyhow!("a simulated agent failed to register"))?;
    }
    Ok(Agents { stop, tasks })
}

async fn run(
    spec: Spec,
    client: reqwest::Client,
    n: usize,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let url = format!("http://{}{AGENT_API_PATH}", spec.master);
    let call = AgentCall::Subscribe {
        agent_id: None,
        info: AgentInfo {
            hostname: format!("sim-{n}"),
            port: 5051,
            resources: spec.resources.to_api(None),
            attributes: Default::default(),
            version: crate::MESOS_VERSION.into(),
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
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        for state in ["TASK_STARTING", "TASK_RUNNING"] {
                            let status = TaskStatus {
                                task_id: task.task_id.clone(),
                                state: state.into(),
                                source: Some("SOURCE_EXECUTOR".into()),
                                agent_id: Some(agent_id.clone()),
                                executor_id: Some(task.task_id.clone()),
                                timestamp: Some(api::now_secs()),
                                uuid: Some(api::new_update_uuid()),
                                ..TaskStatus::default()
                            };
                            send_update(&client, &url, &agent_id, &fw, status).await;
                        }
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
                        state: "TASK_KILLED".into(),
                        source: Some("SOURCE_EXECUTOR".into()),
                        agent_id: Some(agent_id.clone()),
                        timestamp: Some(api::now_secs()),
                        uuid: Some(api::new_update_uuid()),
                        ..TaskStatus::default()
                    };
                    let (client, url) = (client.clone(), url.clone());
                    tokio::spawn(async move {
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
        tracing::warn!(error = %e, "simulated update not delivered");
    }
}
