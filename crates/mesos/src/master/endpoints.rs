//! The v0 endpoints: `/master/state` and `/state-summary` (streamed as they are rendered),
//! `/master/slaves`, `/master/frameworks`, `/master/tasks`, `/master/teardown` and
//! `/metrics/snapshot`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, RawForm, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::http::text;

use super::{state, views, Shared};

/// Pieces of `/master/state` queued for the client at most; the renderer waits for a slow
/// client here, holding none of the master's locks.
const STATE_PIECES_IN_FLIGHT: usize = 4;

/// `/master/state`, streamed as it is rendered (see [`views::write_state`]).
pub(super) async fn state(State(shared): State<Shared>) -> Response {
    let flags = shared.flags();
    stream_rendered(move |out| views::write_state(&shared.core, &flags, out))
}

/// A JSON answer streamed as `render` writes it, piece by piece, on a blocking thread.
fn stream_rendered(
    render: impl FnOnce(&mut PieceSender) -> std::io::Result<()> + Send + 'static,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(STATE_PIECES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = render(&mut PieceSender(tx)) {
            tracing::debug!(error = %e, "a streamed answer was not sent whole");
        }
    });
    let pieces = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|piece| (Ok::<_, std::io::Error>(piece), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(pieces),
    )
        .into_response()
}

/// Hands rendered pieces to the response body; fails once the client is gone.
struct PieceSender(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for PieceSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `/master/state-summary`, streamed as it is rendered (see [`views::write_state_summary`]).
pub(super) async fn state_summary(State(shared): State<Shared>) -> Response {
    stream_rendered(move |out| views::write_state_summary(&shared.core, out))
}

pub(super) async fn slaves(State(shared): State<Shared>) -> Response {
    let m = shared.lock();
    let mut agents: Vec<_> = m.agents().collect();
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    Json(json!({
        "slaves": agents.iter().map(|a| views::agent_v0(a)).collect::<Vec<_>>(),
        "recovered_slaves": m.recovered_agents().map(|(id, i)| json!({"id": id, "hostname": i.hostname, "port": i.port})).collect::<Vec<_>>(),
    }))
    .into_response()
}

pub(super) async fn frameworks(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let m = shared.lock();
    let want = q.get("framework_id");
    let mut fws: Vec<_> = m
        .frameworks()
        .filter(|f| f.active)
        .filter(|f| want.is_none_or(|w| w == f.id()))
        .collect();
    fws.sort_by(|a, b| a.id().cmp(b.id()));
    Json(json!({
        "frameworks": fws.iter().map(|f| views::framework_v0(&m, f)).collect::<Vec<_>>(),
        "completed_frameworks": m.completed_frameworks().iter().map(|f| views::framework_v0(&m, f)).collect::<Vec<_>>(),
        "unregistered_frameworks": [],
    }))
    .into_response()
}

pub(super) async fn tasks(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let offset: usize = q.get("offset").and_then(|l| l.parse().ok()).unwrap_or(0);
    let descending = q.get("order").is_none_or(|o| o != "asc");
    let m = shared.lock();
    let mut all: Vec<&state::Task> = m
        .frameworks()
        .filter(|f| q.get("framework_id").is_none_or(|w| w == f.id()))
        .flat_map(|f| f.tasks.values().chain(f.completed_tasks.iter()))
        .filter(|t| q.get("task_id").is_none_or(|w| *w == t.info.task_id.value))
        .collect();
    all.sort_by(|a, b| {
        let ta = a.statuses.first().and_then(|s| s.timestamp).unwrap_or(0.0);
        let tb = b.statuses.first().and_then(|s| s.timestamp).unwrap_or(0.0);
        ta.partial_cmp(&tb).unwrap_or(std::cmp::Ordering::Equal)
    });
    if descending {
        all.reverse();
    }
    let page: Vec<Value> = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(views::task_v0)
        .collect();
    Json(json!({"tasks": page})).into_response()
}

pub(super) async fn teardown(State(shared): State<Shared>, RawForm(form): RawForm) -> Response {
    let body = String::from_utf8_lossy(&form).to_string();
    let id = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("frameworkId="));
    let Some(id) = id else {
        return text(
            StatusCode::BAD_REQUEST,
            "Missing 'frameworkId' query parameter in the request body",
        );
    };
    if shared.apply(|m| m.teardown(id)) {
        StatusCode::OK.into_response()
    } else {
        text(
            StatusCode::BAD_REQUEST,
            format!("No framework found with specified ID: {id}"),
        )
    }
}

pub(super) async fn metrics(State(shared): State<Shared>) -> Response {
    Json(views::metrics(&shared.lock())).into_response()
}
