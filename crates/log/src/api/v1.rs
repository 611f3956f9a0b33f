//! dcos-log v1: `/range/` and `/stream/` over the node's journal (here: its unit logs), and
//! over a task's `stdout`/`stderr` at `/.../framework/{fw}/executor/{ex}/container/{c}`.
//!
//! Parameters as dcos-log reads them: `filter=FIELD:value` (repeatable; the field is
//! upper-cased; matches on one field are alternatives), `cursor`, `skip_next`, `skip_prev`
//! (without a cursor: from the tail, so `skip_prev=10` is the last ten entries), `limit`
//! and `read_reverse` (ranges only); `Last-Event-ID` replaces the cursor of a stream and
//! cancels its skips (a reconnecting client gets no entry twice). A range with no entry is
//! 204, a malformed parameter 400 with a line of text.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{
    accept, answer, count, last_event_id, ApiError, Ctx, Empty, Plan, Query, Start, Writer,
};
use crate::files::RunId;
use crate::format::Format;
use crate::journal::{Cursor, Filter, Journal};
use crate::select;

/// The fields `/fields/{field}` answers for (the journald container logger's).
const ALLOWED_FIELDS: [&str; 5] = [
    "FRAMEWORK_ID",
    "AGENT_ID",
    "EXECUTOR_ID",
    "CONTAINER_ID",
    "STREAM",
];

/// The parameters of a v1 read.
struct Params {
    filter: Filter,
    start: Start,
    skip_next: u64,
    skip_prev: u64,
    limit: Option<u64>,
    reverse: bool,
    format: Format,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `filter=FIELD:value` parameters.
pub(super) fn filters(query: &Query) -> Result<Filter, ApiError> {
    let mut filter = Filter::default();
    for f in query.all("filter") {
        let parts: Vec<&str> = f.split(':').collect();
        let [field, value] = parts[..] else {
            return Err(ApiError::bad_request(format!(
                "Incorrect filter parameter format, must be ?filter=key:value. Got {f}"
            )));
        };
        filter.add(&field.to_uppercase(), value);
    }
    Ok(filter)
}

/// A journal cursor parameter: 400 when it is not one of ours.
pub(super) fn cursor(text: &str) -> Result<Cursor, ApiError> {
    text.parse().map_err(|()| {
        ApiError::bad_request(format!(
            "Cursor {text:?} not found: not a cursor of this node"
        ))
    })
}

impl Params {
    /// The plan of a v1 answer over `journal`: a range, or a follow when `stream`
    /// (adding unit logs that appear when `rescan_units`).
    fn plan(&self, journal: Journal, stream: bool, rescan_units: bool) -> Plan {
        Plan {
            journal,
            start: self.start.clone(),
            skip_next: self.skip_next,
            skip_prev: self.skip_prev,
            limit: self.limit,
            reverse: self.reverse,
            follow: stream,
            format: self.format,
            writer: Writer::Journal { ids: stream },
            skip_headers: true,
            empty: Empty::NoContent,
            rescan_units,
        }
    }
}

fn params(query: &Query, headers: &HeaderMap, stream: bool) -> Result<Params, ApiError> {
    let filter = filters(query)?;
    let limit = count(query, "limit")?;
    if stream && limit.is_some_and(|l| l > 0) {
        return Err(ApiError::bad_request(
            "Unable to stream events with `limit` parameter",
        ));
    }
    let mut skip_next = count(query, "skip_next")?.unwrap_or(0);
    let mut skip_prev = count(query, "skip_prev")?.unwrap_or(0);
    let reverse = match query.non_empty("read_reverse") {
        None => false,
        Some(_) if stream => {
            return Err(ApiError::bad_request(
                "Unable to stream events with `read_reverse` parameter",
            ))
        }
        Some(v) => parse_bool(v).ok_or_else(|| {
            ApiError::bad_request(format!("Error parsing parameter `read_reverse`: {v:?}"))
        })?,
    };
    let mut cursor_text = query.non_empty("cursor").map(str::to_string);
    if stream {
        if let Some(id) = last_event_id(headers) {
            cursor_text = Some(id.to_string());
            skip_next = 0;
            skip_prev = 0;
        }
    }
    let start = match cursor_text {
        Some(c) => Start::Cursor(cursor(&c)?),
        // journald's reader moves to the tail before skipping back without a cursor.
        None if skip_prev > 0 => Start::Tail,
        None => Start::Head,
    };
    Ok(Params {
        filter,
        start,
        skip_next,
        skip_prev,
        limit,
        reverse,
        format: Format::from_accept(accept(headers)),
    })
}

async fn units(ctx: Arc<Ctx>, query: Query, headers: HeaderMap, stream: bool) -> Response {
    let p = match params(&query, &headers, stream) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (dir, node) = (ctx.logs_dir.clone(), ctx.node.clone());
    let filter = p.filter.clone();
    let built =
        tokio::task::spawn_blocking(move || select::units(&dir, &node, filter, !stream)).await;
    let journal = match built {
        Ok(Ok(j)) => j,
        Ok(Err(e)) => {
            return ApiError::internal("Error opening journal reader", &e).into_response()
        }
        Err(e) => return ApiError::internal("Error opening journal reader", &e).into_response(),
    };
    answer(ctx, p.plan(journal, stream, stream)).await
}

/// `GET /v1/range/`: entries of every unit log that match.
pub async fn range(
    State(ctx): State<Arc<Ctx>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    units(ctx, Query::parse(q.as_deref()), headers, false).await
}

/// `GET /v1/stream/`: the same, followed.
pub async fn stream(
    State(ctx): State<Arc<Ctx>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    units(ctx, Query::parse(q.as_deref()), headers, true).await
}

async fn task(
    ctx: Arc<Ctx>,
    (framework_id, executor_id, container_id): (String, String, String),
    query: Query,
    headers: HeaderMap,
    stream: bool,
) -> Response {
    let run = RunId {
        framework_id,
        executor_id,
        container_id,
    };
    if let Err(e) = run.check() {
        return ApiError::bad_request(e.to_string()).into_response();
    }
    let p = match params(&query, &headers, stream) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let journal = match ctx.sandboxes.clone() {
        // No sandboxes on this node: nothing matches, as in a journal without the task.
        None => crate::journal::Journal::new(p.filter.clone(), !stream),
        Some(root) => {
            let filter = p.filter.clone();
            let built =
                tokio::task::spawn_blocking(move || select::task(&root, &run, filter, !stream))
                    .await;
            match built {
                Ok(Ok(j)) => j,
                Ok(Err(e)) => {
                    return ApiError::internal("Error opening journal reader", &e).into_response()
                }
                Err(e) => {
                    return ApiError::internal("Error opening journal reader", &e).into_response()
                }
            }
        }
    };
    answer(ctx, p.plan(journal, stream, false)).await
}

/// `GET /v1/range/framework/{fw}/executor/{ex}/container/{c}`: a task's output.
pub async fn task_range(
    State(ctx): State<Arc<Ctx>>,
    Path(ids): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    task(ctx, ids, Query::parse(q.as_deref()), headers, false).await
}

/// `GET /v1/stream/framework/{fw}/executor/{ex}/container/{c}`: the same, followed.
pub async fn task_stream(
    State(ctx): State<Arc<Ctx>>,
    Path(ids): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    task(ctx, ids, Query::parse(q.as_deref()), headers, true).await
}

/// `GET /v1/fields/{field}`: the values of a container logger field. Task output is kept in
/// sandbox files, not in the journal, so there are none (204); other fields are refused.
pub async fn fields(Path(field): Path<String>) -> Response {
    if !ALLOWED_FIELDS.contains(&field.as_str()) {
        return ApiError::bad_request(format!("{field} is not an allowed field")).into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}
