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
use crate::agent::state::Shared;
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
        CallBody::Subscribe(subscribe) => self::subscribe(shared, &ekey, subscribe),
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

/// SUBSCRIBE: opens the executor's event stream with SUBSCRIBED, then its backlog.
fn subscribe(shared: &Shared, ekey: &str, subscribe: Subscribe) -> Result<Response, Response> {
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
    let owned = shared
        .lock()
        .runs
        .get(&task_key)
        .is_some_and(|r| r.custom && r.executor_id == executor_id.value);
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
