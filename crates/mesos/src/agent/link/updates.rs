//! Status updates: made as typed [`TaskStatus`]es, recorded on their run and checkpointed,
//! then sent to the master at least once and in order per task: the head of each run's
//! queue is resent every [`UPDATE_RETRY`] until the framework acknowledges it.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::agent::executor;
use crate::agent::state::{is_completed, Shared};
use crate::api::{self, Id, Reason, Source, TaskState, TaskStatus};
use crate::protocol::{AgentCall, AGENT_API_PATH};

/// Unacknowledged updates are resent this often.
pub(crate) const UPDATE_RETRY: Duration = Duration::from_secs(10);

impl Shared {
    /// Queues a status update for a run from its executor (the built-in command executor).
    pub(crate) fn update(
        &self,
        key: &str,
        state: TaskState,
        message: Option<String>,
        reason: Option<Reason>,
    ) {
        self.report(key, state, message, reason, Source::Executor);
    }

    /// Queues a status update for a run, made by the agent on behalf of `source`.
    pub(crate) fn report(
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
    /// retried until acknowledged, never before it is on disk). False if the run is unknown
    /// or already terminal. A status whose uuid the run already knows (still queued, or its
    /// latest) is accepted as it is, not queued again: an executor may send an update twice,
    /// and resends the unacknowledged ones when it subscribes again.
    pub(crate) fn enqueue(&self, key: &str, mut status: TaskStatus) -> bool {
        let host = self.host();
        let uuid = status.uuid.get_or_insert_with(api::new_update_uuid).clone();
        let run = {
            let mut st = self.lock();
            let agent_id = st.id.clone();
            let Some(run) = st.runs.get_mut(key) else {
                return false;
            };
            let known = |s: &TaskStatus| s.uuid.as_deref() == Some(uuid.as_str());
            if run.pending.iter().any(known) || run.last_status.as_ref().is_some_and(known) {
                return true;
            }
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
                    "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": host}]}],
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
            // Not sendable until checkpointed (see `due`).
            run.unsynced.push(uuid.clone());
            run.clone()
        };
        // Writes the run as it is now, with this status (and any queued since).
        self.checkpoint(&run);
        {
            let mut st = self.lock();
            if let Some(run) = st.runs.get_mut(key) {
                run.unsynced.retain(|u| *u != uuid);
            }
        }
        self.updates.notify_one();
        true
    }
}

/// The framework acknowledged the update `uuid` of a task: the next one may go, and a
/// custom executor hears of it.
pub(crate) fn acknowledge(shared: &Shared, framework_id: &Id, task_id: &Id, uuid: &str) {
    let key = format!("{}__{}", framework_id.value, task_id.value);
    let (run, acked) = {
        let mut st = shared.lock();
        let Some(run) = st.runs.get_mut(&key) else {
            return;
        };
        if run.pending.front().and_then(|s| s.uuid.as_deref()) != Some(uuid) {
            return;
        }
        let acked = run.pending.pop_front();
        let run = run.clone();
        if TaskState::is_terminal(run.state) && run.pending.is_empty() {
            st.complete(&key);
        }
        (run, acked)
    };
    shared.checkpoint(&run);
    shared.updates.notify_one();
    if let Some(status) = acked.filter(|_| run.custom) {
        executor::acknowledged(shared, &run, status);
    }
}

/// Sends the head of every run's update queue to the master, now and every retry period.
pub(crate) async fn sender(shared: Shared, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = shared.updates.notified() => {}
            _ = tokio::time::sleep(UPDATE_RETRY) => {}
        }
        let (master, agent_id, heads) = due(&shared);
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

pub(crate) type Due = (
    Option<std::net::SocketAddr>,
    Option<String>,
    Vec<(String, TaskStatus)>,
);

/// The master, the agent id, and the heads of the queues due now (checkpointed, and never
/// sent, replaced since sent, or sent a retry period ago), each with its framework, marked
/// as sent.
pub(crate) fn due(shared: &Shared) -> Due {
    let mut st = shared.lock();
    let now = Instant::now();
    let heads: Vec<(String, TaskStatus)> = st
        .runs
        .iter_mut()
        .filter(|(k, _)| !is_completed(k))
        .filter_map(|(_, r)| {
            let head = r.pending.front()?.clone();
            let uuid = head.uuid.clone().unwrap_or_default();
            // Only what is on disk may be sent.
            if r.unsynced.contains(&uuid) {
                return None;
            }
            let due = match &r.last_sent {
                Some((sent, at)) => *sent != uuid || now.duration_since(*at) >= UPDATE_RETRY,
                None => true,
            };
            due.then(|| {
                r.last_sent = Some((uuid, now));
                (r.framework_id(), head)
            })
        })
        .collect();
    (st.master, st.id.clone(), heads)
}
