//! The agent's link to the master: it SUBSCRIBEs to the leading master's `/api/v1/agent`
//! (following a standby's redirect), reporting its resources and the tasks it runs, and
//! holds the RecordIO stream of [`AgentEvent`]s it gets back, the liveness signal of both
//! sides; it re-subscribes with backoff when the stream breaks or goes silent. Status
//! updates go up, and are acknowledged, in [`updates`].

pub(crate) mod updates;

use std::net::SocketAddr;
use std::time::Duration;

use dcos_ports::RangeSet;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::state::{Run, Shared};
use super::{executor, procfs, sandbox, tasks};
use crate::api::{FrameworkInfo, Id, TaskInfo, TaskState};
use crate::protocol::{AgentCall, AgentEvent, AgentInfo, TaskReport, AGENT_API_PATH};
use crate::recordio;
use crate::resources::Resources;

/// A master stream silent for this long is considered lost.
const MASTER_SILENCE: Duration = Duration::from_secs(45);
/// The first wait before re-subscribing; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait before re-subscribing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follows the masters in turn until `shutdown`: subscribed to one at a time, the next one
/// (or the leader a standby named) when the stream ends.
pub(crate) async fn follow(shared: Shared, shutdown: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    let mut i = 0usize;
    // The leader a standby master named, tried next without waiting.
    let mut redirected: Option<SocketAddr> = None;
    let mut followed_redirect = false;
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
                    Ok(()) => backoff = MIN_BACKOFF,
                    Err(e) => match e.downcast::<Redirected>() {
                        // Straight to the leader a standby named, once: a redirect that
                        // leads to another redirect (or to itself, while a dead leader's
                        // session lingers) waits like any failure.
                        Ok(Redirected(leader)) if !followed_redirect && leader != master => {
                            tracing::debug!(%master, %leader, "a standby master named the leader");
                            redirected = Some(leader);
                            followed_redirect = true;
                            shared.lock().master = None;
                            continue;
                        }
                        Ok(Redirected(leader)) => {
                            tracing::debug!(%master, %leader, "redirected again; waiting");
                        }
                        Err(e) => tracing::debug!(%master, error = %e, "master connection failed"),
                    },
                }
            }
        }
        shared.lock().master = None;
        followed_redirect = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
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

/// The SUBSCRIBE call: who the agent is, what it offers, what it runs.
fn subscribe_call(shared: &Shared) -> AgentCall {
    // Read apart: a guard in the struct expression would live to its end, and `advertised`
    // and `reports` lock too.
    let agent_id = shared.lock().id.clone().map(Id::new);
    AgentCall::Subscribe {
        agent_id,
        info: AgentInfo {
            hostname: shared.host(),
            port: shared.config.listen.port(),
            resources: advertised(shared).to_api(None),
            attributes: shared.config.attributes.clone(),
            version: crate::MESOS_VERSION.into(),
        },
        tasks: reports(shared),
    }
}

/// Subscribes to `master` and handles its events until the stream ends.
async fn follow_master(shared: &Shared, master: SocketAddr) -> anyhow::Result<()> {
    let mut subscribe = shared
        .client
        .post(format!("http://{master}{AGENT_API_PATH}"))
        .json(&subscribe_call(shared));
    // Strict security: a fresh token of the agent's service account, which the master
    // checks at SUBSCRIBE (its other calls come from the connection it registered).
    if let Some(login) = &shared.config.login {
        let token = login.token().await.map_err(anyhow::Error::msg)?;
        subscribe = subscribe.header(reqwest::header::AUTHORIZATION, format!("token={token}"));
    }
    let resp = subscribe.send().await?;
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
        AgentEvent::Registered { agent_id, .. } => registered(shared, master, &agent_id),
        AgentEvent::RunTask { framework, task } => tasks::launch(shared, framework, task),
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
                tasks::kill(shared, &key, grace);
            }
        }
        AgentEvent::Acknowledge {
            framework_id,
            task_id,
            uuid,
        } => updates::acknowledge(shared, &framework_id, &task_id, &uuid),
        AgentEvent::ShutdownFramework { framework_id } => {
            shutdown_framework(shared, &framework_id.value)
        }
        AgentEvent::FrameworkMessage {
            framework_id,
            executor_id,
            data,
        } => executor::message(shared, &framework_id.value, &executor_id.value, data),
        AgentEvent::Heartbeat => {}
    }
}

/// REGISTERED: the agent's id, checkpointed; every pending update is due again.
fn registered(shared: &Shared, master: SocketAddr, agent_id: &Id) {
    shared.checkpoint_agent_id(&agent_id.value);
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

/// SHUTDOWN_FRAMEWORK: the framework is gone, and so are its executors and tasks.
fn shutdown_framework(shared: &Shared, framework_id: &str) {
    executor::shutdown_framework(shared, framework_id);
    let keys: Vec<String> = shared
        .lock()
        .runs
        .values()
        .filter(|r| r.framework_id() == framework_id && !r.custom)
        .map(Run::key)
        .collect();
    for key in keys {
        tasks::kill(shared, &key, None);
    }
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
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    let id = |pointer: &str| text(pointer).and_then(|v| Id::parse(v).ok());
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
    let agent_id = Id::parse(shared.agent_id()).unwrap_or_default();
    let task = TaskInfo {
        agent_id,
        name: text("/task/name").unwrap_or_default().into(),
        task_id,
        ..TaskInfo::default()
    };
    let executor_id = text("/task/executor/executor_id/value").unwrap_or_default();
    tasks::refuse(
        shared,
        framework,
        task,
        executor_id,
        &format!("an id in it is invalid: {why}"),
    );
}

/// The tasks the agent runs, for SUBSCRIBE.
fn reports(shared: &Shared) -> Vec<TaskReport> {
    shared
        .lock()
        .runs
        .values()
        .filter(|r| !TaskState::is_terminal(r.state))
        .map(|r| TaskReport {
            framework: r.framework.clone(),
            task: r.task.clone(),
            state: r.state,
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
    let bound = procfs::bound_ports().subtract(&ours);
    total.ports = total.ports.subtract(&bound);
    total
}

/// Relays an executor's message to its scheduler through the master.
pub(crate) fn forward_message(shared: &Shared, framework_id: Id, executor_id: Id, data: String) {
    let (master, agent_id) = {
        let st = shared.lock();
        (st.master, st.id.clone())
    };
    let (Some(master), Some(agent_id)) = (master, agent_id) else {
        tracing::warn!(framework_id = %framework_id.value, "executor message dropped: no master");
        return;
    };
    let call = AgentCall::Message {
        agent_id: Id::new(agent_id),
        framework_id,
        executor_id,
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
