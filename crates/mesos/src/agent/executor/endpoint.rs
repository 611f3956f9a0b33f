//! The executor HTTP API (`POST /api/v1/executor`): SUBSCRIBE, UPDATE and MESSAGE calls from
//! custom executors, each read once into a typed [`Call`], refused in Mesos' words when it
//! is not one.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::{key, Executor};
use crate::agent::link;
use crate::agent::state::{Run, Shared, COMPLETED};
use crate::api::{Id, Source, TaskStatus};
use crate::http::{check_json, stream_response, text};
use crate::recordio;
use dcos_mesos_api::executor::{AgentInfo, Call, CallBody, Event, Subscribe, Subscribed};

/// Events buffered on an executor's stream before it counts as stuck.
const STREAM_BUFFER: usize = 1024;

fn bad(message: impl Into<String>) -> Response {
    text(StatusCode::BAD_REQUEST, message)
}

/// `POST /api/v1/executor`.
pub(crate) async fn api(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match call(&shared, &headers, &body) {
        Ok(r) | Err(r) => r,
    }
}

fn call(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<Response, Response> {
    check_json(headers)?;
    let call = Call::parse(body).map_err(|e| bad(e.to_string()))?;
    let (framework_id, executor_id) = (call.framework_id, call.executor_id);
    let ekey = key(&framework_id.value, &executor_id.value);
    if !shared.lock().executors.contains_key(&ekey) {
        let known_framework = shared
            .lock()
            .runs
            .values()
            .any(|r| r.framework_id() == framework_id.value);
        return Err(bad(if known_framework {
            "Executor cannot be found"
        } else {
            "Framework cannot be found"
        }));
    }
    match call.body {
        CallBody::Subscribe(subscribe) => {
            self::subscribe(shared, &framework_id, &executor_id, &ekey, subscribe)
        }
        CallBody::Update(update) => {
            self::update(shared, &framework_id, &executor_id, update.status)
        }
        CallBody::Message(message) => {
            link::forward_message(shared, framework_id, executor_id, message.data);
            Ok(StatusCode::ACCEPTED.into_response())
        }
    }
}

/// SUBSCRIBED for an executor.
fn subscribed(shared: &Shared, agent_id: Option<String>, executor: &Executor) -> Event {
    Event::Subscribed(Box::new(Subscribed {
        executor_info: executor.info.clone(),
        framework_info: executor.framework.clone(),
        agent_info: AgentInfo {
            id: agent_id.map(Id::new),
            hostname: shared.host(),
            port: shared.config.listen.port(),
            resources: shared.config.resources.to_api(None),
        },
        container_id: Some(Id::new(&executor.container_id)),
    }))
}

/// SUBSCRIBE: takes the updates the executor has not seen acknowledged as if sent again
/// (executor libraries resend them only here, never as UPDATE), then opens the executor's
/// event stream with SUBSCRIBED, then its backlog.
fn subscribe(
    shared: &Shared,
    framework_id: &Id,
    executor_id: &Id,
    ekey: &str,
    subscribe: Subscribe,
) -> Result<Response, Response> {
    // As Mesos' `Slave::subscribe`: each goes the way of an UPDATE; one the agent already
    // has (it checkpointed it before a restart, or the connection dropped after the UPDATE)
    // is recognised by its uuid and not queued again.
    for unacked in subscribe.unacknowledged_updates {
        let task_id = unacked.status.task_id.value.clone();
        if let Err(refused) = self::update(shared, framework_id, executor_id, unacked.status) {
            tracing::debug!(executor = %ekey, task = %task_id, status = %refused.status(),
                "unacknowledged update of a re-subscribing executor not taken");
        }
    }
    // Tasks the executor already runs (it re-subscribes after an agent restart): their
    // LAUNCH events must not be replayed.
    let known: Vec<Id> = subscribe
        .unacknowledged_tasks
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let mut st = shared.lock();
    let agent_id = st.id.clone();
    let Some(executor) = st.executors.get_mut(ekey) else {
        return Err(bad("Executor cannot be found"));
    };
    let session = executor.stream.as_ref().map_or(0, |(s, _)| s + 1);
    let first = subscribed(shared, agent_id, executor);
    let _ = tx.try_send(recordio::encode(
        &serde_json::to_vec(&first).unwrap_or_default(),
    ));
    executor.subscribed = true;
    executor.stream = Some((session, tx));
    for event in std::mem::take(&mut executor.backlog) {
        if !event.launched_task().is_some_and(|id| known.contains(id)) {
            executor.deliver(event);
        }
    }
    let snapshot = executor.clone();
    drop(st);
    shared.checkpoint_executor(&snapshot);
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

/// UPDATE: a status of one of the executor's tasks, queued for the master.
fn update(
    shared: &Shared,
    framework_id: &Id,
    executor_id: &Id,
    status: TaskStatus,
) -> Result<Response, Response> {
    let task_key = format!("{}__{}", framework_id.value, status.task_id.value);
    let (owned, acknowledged) = {
        let st = shared.lock();
        let ours = |r: &&Run| r.custom && r.executor_id == executor_id.value;
        let owned = st.runs.get(&task_key).filter(ours).is_some();
        // Its terminal update, resent after the framework acknowledged it (the run is
        // complete): already known.
        let acknowledged = st
            .runs
            .get(&format!("{COMPLETED}{task_key}"))
            .filter(ours)
            .and_then(|r| r.last_status.as_ref())
            .is_some_and(|s| s.uuid.is_some() && s.uuid == status.uuid);
        (owned, acknowledged)
    };
    if acknowledged && !owned {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    if !owned {
        return Err(bad(format!(
            "Task '{}' is not a task of executor '{}'",
            status.task_id.value, executor_id.value
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use axum::http::header;
    use serde_json::{json, Value};

    use super::*;
    use crate::agent::link::updates::{acknowledge, due};
    use crate::agent::Config;
    use crate::api::{ExecutorInfo, FrameworkInfo, TaskInfo, TaskState};

    const KEY: &str = "fw__t";

    /// An agent over `work_dir` with one staged task `t` of framework `fw` under the
    /// subscribed custom executor `ex`.
    fn agent(work_dir: &Path) -> Shared {
        let shared = Shared::new(Config {
            work_dir: work_dir.to_path_buf(),
            ..Config::default()
        });
        let framework = FrameworkInfo {
            id: Some(Id::new("fw")),
            ..FrameworkInfo::default()
        };
        let task = TaskInfo {
            task_id: Id::new("t"),
            agent_id: Id::new("agent"),
            ..TaskInfo::default()
        };
        let sandbox = work_dir.join("sandbox");
        std::fs::create_dir_all(&sandbox).unwrap();
        let mut run = Run::staging(
            framework.clone(),
            task,
            "ex".into(),
            "c".into(),
            sandbox.clone(),
        );
        run.custom = true;
        let executor = Executor {
            framework,
            info: ExecutorInfo {
                executor_id: Id::new("ex"),
                ..ExecutorInfo::default()
            },
            container_id: "c".into(),
            sandbox,
            pid: None,
            process: None,
            backlog: Vec::new(),
            subscribed: true,
            shutting_down: false,
            stream: None,
        };
        {
            let mut st = shared.lock();
            st.runs.insert(run.key(), run);
            st.executors.insert(executor.key(), executor);
        }
        shared
    }

    fn post(shared: &Shared, body: Value) -> StatusCode {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        match call(shared, &headers, &Bytes::from(body.to_string())) {
            Ok(r) | Err(r) => r.status(),
        }
    }

    fn status(state: &str, uuid: &str) -> Value {
        json!({"task_id": {"value": "t"}, "state": state, "uuid": uuid})
    }

    fn update(state: &str, uuid: &str) -> Value {
        json!({"type": "UPDATE", "framework_id": {"value": "fw"}, "executor_id": {"value": "ex"},
               "update": {"status": status(state, uuid)}})
    }

    fn pending(shared: &Shared, key: &str) -> Vec<String> {
        shared.lock().runs[key]
            .pending
            .iter()
            .map(|s| s.uuid.clone().unwrap_or_default())
            .collect()
    }

    /// The uuids of the ACKNOWLEDGED events waiting for the executor.
    fn acknowledged(shared: &Shared) -> Vec<String> {
        shared.lock().executors["fw__ex"]
            .backlog
            .iter()
            .filter_map(|e| match e {
                Event::Acknowledged(a) => Some(a.uuid.clone()),
                _ => None,
            })
            .collect()
    }

    /// The statuses of the task's checkpoint on disk.
    fn checkpointed(work_dir: &Path) -> Vec<String> {
        let path = work_dir.join("meta/tasks").join(format!("{KEY}.json"));
        let run: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        run["pending"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["uuid"].as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn an_update_sent_twice_is_forwarded_and_acknowledged_once() {
        let dir = tempfile::tempdir().unwrap();
        let shared = agent(dir.path());
        assert_eq!(
            post(&shared, update("TASK_RUNNING", "r1")),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            post(&shared, update("TASK_RUNNING", "r1")),
            StatusCode::ACCEPTED
        );
        assert_eq!(pending(&shared, KEY), ["r1"]);
        // On disk before it can be sent, and sent once.
        assert_eq!(checkpointed(dir.path()), ["r1"]);
        assert_eq!(due(&shared).2.len(), 1);
        acknowledge(&shared, &Id::new("fw"), &Id::new("t"), "r1");
        assert_eq!(acknowledged(&shared), ["r1"]);
        // Once acknowledged, a late copy is still known: not queued again, no second ack.
        assert_eq!(
            post(&shared, update("TASK_RUNNING", "r1")),
            StatusCode::ACCEPTED
        );
        assert!(pending(&shared, KEY).is_empty());
        // A terminal update sent twice is no "already terminal" error either.
        assert_eq!(
            post(&shared, update("TASK_FINISHED", "f1")),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            post(&shared, update("TASK_FINISHED", "f1")),
            StatusCode::ACCEPTED
        );
        assert_eq!(pending(&shared, KEY), ["f1"]);
        acknowledge(&shared, &Id::new("fw"), &Id::new("t"), "f1");
        assert_eq!(acknowledged(&shared), ["r1", "f1"]);
        // Nor once the run is complete; a new update after the terminal one still is.
        assert_eq!(
            post(&shared, update("TASK_FINISHED", "f1")),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            post(&shared, update("TASK_RUNNING", "r2")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(acknowledged(&shared), ["r1", "f1"]);
    }

    #[tokio::test]
    async fn unacknowledged_updates_of_a_resubscription_reach_the_framework() {
        let dir = tempfile::tempdir().unwrap();
        let shared = agent(dir.path());
        // Sent before a restart, checkpointed: the resent copy is not queued again.
        assert_eq!(
            post(&shared, update("TASK_RUNNING", "r1")),
            StatusCode::ACCEPTED
        );
        let subscribe = json!({"type": "SUBSCRIBE", "framework_id": {"value": "fw"},
        "executor_id": {"value": "ex"},
        "subscribe": {"unacknowledged_updates": [
            {"status": status("TASK_RUNNING", "r1")},
            // Lost with the connection: only the re-subscription carries it.
            {"status": status("TASK_FINISHED", "f1")},
        ]}});
        assert_eq!(post(&shared, subscribe.clone()), StatusCode::OK);
        assert_eq!(pending(&shared, KEY), ["r1", "f1"]);
        assert_eq!(checkpointed(dir.path()), ["r1", "f1"]);
        assert_eq!(shared.lock().runs[KEY].state, TaskState::Finished);
        // Subscribing again with the same updates changes nothing.
        assert_eq!(post(&shared, subscribe), StatusCode::OK);
        assert_eq!(pending(&shared, KEY), ["r1", "f1"]);
        // Both go to the master in order, and are acknowledged to the executor once each.
        for uuid in ["r1", "f1"] {
            let heads = due(&shared).2;
            assert_eq!(heads.len(), 1);
            assert_eq!(heads[0].1.uuid.as_deref(), Some(uuid));
            acknowledge(&shared, &Id::new("fw"), &Id::new("t"), uuid);
        }
        assert!(shared
            .lock()
            .runs
            .contains_key(&format!("{COMPLETED}{KEY}")));
    }

    #[tokio::test]
    async fn an_update_not_yet_on_disk_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let shared = agent(dir.path());
        assert_eq!(
            post(&shared, update("TASK_RUNNING", "r1")),
            StatusCode::ACCEPTED
        );
        // As between queueing and checkpointing in `enqueue`.
        shared
            .lock()
            .runs
            .get_mut(KEY)
            .unwrap()
            .unsynced
            .push("r1".into());
        assert!(due(&shared).2.is_empty());
        shared.lock().runs.get_mut(KEY).unwrap().unsynced.clear();
        assert_eq!(due(&shared).2.len(), 1);
    }
}
