//! dcos-log v2, which the DC/OS CLI 0.6.1 uses when Cosmos lists `LOGGING_V2`.
//!
//! - `/component` and `/component/{unit}`: the node's unit logs (all, or one unit: entries
//!   whose `UNIT` or `_SYSTEMD_UNIT` is it), as journal entries. `skip=-N` skips back N
//!   entries (from the tail without a cursor), `skip=N` forwards; `cursor` is a journal
//!   cursor or `BEG`/`END`; `limit`; `filter=FIELD:value`. `Accept: text/event-stream`
//!   follows, with cursors as event ids and `Last-Event-ID` honoured.
//! - `/task/frameworks/{fw}/executors/{ex}/runs/{c}/{file}` (agents): a sandbox file line
//!   by line; `cursor` is a byte offset (or `BEG`/`END`), `skip` counts lines as above,
//!   event ids are byte offsets, `Last-Event-ID` one of them.
//! - `/task/{task}` and `/task/{task}/file/{file}` (masters): 303 to the agent's
//!   `/system/v1/agent/{agent}/logs/v2/task/frameworks/...` URL of the task's sandbox, found in
//!   the Mesos master's state; the query is kept.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::v1::{cursor as journal_cursor, filters};
use super::{
    accept, answer, count, last_event_id, ApiError, Ctx, Empty, Plan, Query, Start, Writer,
};
use crate::discover;
use crate::files::{self, RunId};
use crate::format::Format;
use crate::select;

/// A `skip` parameter: negative backwards, positive forwards.
fn skip(query: &Query) -> Result<(u64, u64), ApiError> {
    match query.non_empty("skip") {
        None => Ok((0, 0)),
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "unable to parse skip parameter. {v} not an integer"
                ))
            })?;
            Ok(if n >= 0 {
                (n.unsigned_abs(), 0)
            } else {
                (0, n.unsigned_abs())
            })
        }
    }
}

async fn component_log(
    ctx: Arc<Ctx>,
    name: Option<String>,
    query: Query,
    headers: HeaderMap,
) -> Response {
    let format = Format::from_accept(accept(&headers));
    let follow = format == Format::Events;
    let mut filter = match filters(&query) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    if let Some(name) = &name {
        filter.add_any(&[("UNIT", name), ("_SYSTEMD_UNIT", name)]);
    }
    let limit = match count(&query, "limit") {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let (mut skip_next, mut skip_prev) = match skip(&query) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let start = if let Some(id) = last_event_id(&headers) {
        // A reconnecting client resumes after the last entry it got, skips left out.
        (skip_next, skip_prev) = (0, 0);
        match journal_cursor(id) {
            Ok(c) => Start::Cursor(c),
            Err(e) => return e.into_response(),
        }
    } else {
        match query.non_empty("cursor") {
            Some("BEG") => Start::Head,
            Some("END") => Start::Tail,
            Some(c) => match journal_cursor(c) {
                Ok(c) => Start::Cursor(c),
                Err(e) => return e.into_response(),
            },
            None if skip_prev > 0 => Start::Tail,
            None => Start::Head,
        }
    };
    let (dir, node) = (ctx.logs_dir.clone(), ctx.node.clone());
    let built =
        tokio::task::spawn_blocking(move || select::units(&dir, &node, filter, !follow)).await;
    let journal = match built {
        Ok(Ok(j)) => j,
        Ok(Err(e)) => return ApiError::internal("unable to open journald", &e).into_response(),
        Err(e) => return ApiError::internal("unable to open journald", &e).into_response(),
    };
    let plan = Plan {
        journal,
        start,
        skip_next,
        skip_prev,
        limit,
        reverse: false,
        follow,
        format,
        writer: Writer::Journal { ids: follow },
        skip_headers: false,
        empty: Empty::NoContent,
        rescan_units: follow,
    };
    answer(ctx, plan).await
}

/// `GET /v2/component`: every unit's log.
pub async fn components(
    State(ctx): State<Arc<Ctx>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    component_log(ctx, None, Query::parse(q.as_deref()), headers).await
}

/// `GET /v2/component/{unit}`: one unit's log.
pub async fn component(
    State(ctx): State<Arc<Ctx>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    component_log(ctx, Some(name), Query::parse(q.as_deref()), headers).await
}

/// An offset parameter or header: 400 when it is not a non-negative integer.
fn offset(what: &str, v: &str) -> Result<u64, ApiError> {
    v.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("unable to parse {what}. {v} not an integer")))
}

/// `GET /v2/task/frameworks/{fw}/executors/{ex}/runs/{c}/{file}`: a sandbox file.
pub async fn task_file(
    State(ctx): State<Arc<Ctx>>,
    Path((framework_id, executor_id, container_id, file)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = Query::parse(q.as_deref());
    let run = RunId {
        framework_id,
        executor_id,
        container_id,
    };
    if let Err(e) = run.check().and_then(|()| files::check_name("file", &file)) {
        return ApiError::bad_request(e.to_string()).into_response();
    }
    let format = match Format::from_accept(accept(&headers)) {
        Format::Events => Format::Events,
        _ => Format::Text,
    };
    let follow = format == Format::Events;
    let limit = match count(&query, "limit") {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let parsed = (|| {
        if let Some(id) = last_event_id(&headers) {
            return Ok((Start::Offset(offset("Last-Event-ID header", id)?), 0, 0));
        }
        let (skip_next, skip_prev) = skip(&query)?;
        let start = match query.non_empty("cursor") {
            None | Some("BEG") => Start::Head,
            Some("END") => Start::Tail,
            Some(c) => Start::Offset(offset("cursor parameter", c)?),
        };
        Ok((start, skip_next, skip_prev))
    })();
    let (start, skip_next, skip_prev) = match parsed {
        Ok(p) => p,
        Err(e) => return ApiError::into_response(e),
    };
    let Some(root) = ctx.sandboxes.clone() else {
        return ApiError::new(StatusCode::NOT_FOUND, "File not found").into_response();
    };
    let built =
        tokio::task::spawn_blocking(move || select::task_file(&root, &run, &file, !follow)).await;
    let (journal, fields) = match built {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => {
            return ApiError::new(StatusCode::NOT_FOUND, "File not found").into_response()
        }
        Ok(Err(e)) => {
            return ApiError::internal("unable to initialize files API reader", &e).into_response()
        }
        Err(e) => {
            return ApiError::internal("unable to initialize files API reader", &e).into_response()
        }
    };
    let plan = Plan {
        journal,
        start,
        skip_next,
        skip_prev,
        limit,
        reverse: false,
        follow,
        format,
        writer: Writer::File { fields },
        skip_headers: false,
        empty: Empty::Ok,
        rescan_units: false,
    };
    answer(ctx, plan).await
}

/// Escapes a path segment of a redirect.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn discover_file_of(
    ctx: Arc<Ctx>,
    task: String,
    file: String,
    query: Option<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = files::check_name("file", &file) {
        return ApiError::bad_request(e.to_string()).into_response();
    }
    let Some(url) = ctx.mesos_state.clone() else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unable to get canonical task ID: this node does not know the Mesos master; ask a master",
        )
        .into_response();
    };
    let auth = headers.get(header::AUTHORIZATION);
    let found = match discover::state(&ctx.http, &url, auth).await {
        Ok(state) => discover::find(&state, &task),
        Err(e) => Err(e),
    };
    let run = match found {
        Ok(run) => run,
        Err(e) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unable to get canonical task ID: {e}"),
            )
            .into_response()
        }
    };
    let mut location = format!(
        "/system/v1/agent/{}/logs/v2/task/frameworks/{}/executors/{}/runs/{}/{}",
        segment(&run.agent_id),
        segment(&run.framework_id),
        segment(&run.executor_id),
        segment(&run.container_id),
        segment(&file)
    );
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        location.push('?');
        location.push_str(&q);
    }
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(e) => {
            ApiError::bad_request(format!("unable to build redirect URL: {e}")).into_response()
        }
    }
}

/// `GET /v2/task/{task}`: to the agent's URL of the task's `stdout`.
pub async fn discover(
    State(ctx): State<Arc<Ctx>>,
    Path(task): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    discover_file_of(ctx, task, "stdout".into(), q, headers).await
}

/// `GET /v2/task/{task}/file/{file}`: to the agent's URL of the task's `file`.
pub async fn discover_file(
    State(ctx): State<Arc<Ctx>>,
    Path((task, file)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    discover_file_of(ctx, task, file, q, headers).await
}
