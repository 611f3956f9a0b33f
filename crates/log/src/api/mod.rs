//! The HTTP API: dcos-log's v1 ([`v1`]) and v2 ([`v2`]) routes, and the one way every read
//! is answered ([`answer`]): position, skip, then a range (closed when read) or a follow
//! (kept open, new entries sent as they are written, a keepalive comment when idle, closed
//! when the server stops).
//!
//! File reads are blocking and run on tokio's blocking pool, one bounded batch at a time, so
//! a slow client only holds its own reader and never a runtime thread.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::format::{self, Format};
use crate::journal::{Cursor, Fields, Journal};
use crate::select::{self, Node};
use crate::Tuning;

pub mod v1;
pub mod v2;

pub use dcos_serve::query::Query;

/// What every handler works with.
pub struct Ctx {
    /// The node's unit logs.
    pub logs_dir: std::path::PathBuf,
    /// The agent's work dir (sandboxes), on agents.
    pub sandboxes: Option<std::path::PathBuf>,
    /// The Mesos master's state URL, for finding a task's agent (masters).
    pub mesos_state: Option<String>,
    /// This node.
    pub node: Node,
    /// Limits and timings.
    pub tuning: Tuning,
    /// Cancelled when the server stops: followed logs end.
    pub shutdown: CancellationToken,
    /// The client for the Mesos master.
    pub http: reqwest::Client,
}

/// The routes, below Admin Router's `/system/v1/logs`.
pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/v1/range/", get(v1::range))
        .route("/v1/range", get(v1::range))
        .route("/v1/stream/", get(v1::stream))
        .route("/v1/stream", get(v1::stream))
        .route(
            "/v1/range/framework/{framework_id}/executor/{executor_id}/container/{container_id}",
            get(v1::task_range),
        )
        .route(
            "/v1/stream/framework/{framework_id}/executor/{executor_id}/container/{container_id}",
            get(v1::task_stream),
        )
        .route("/v1/fields/{field}", get(v1::fields))
        .route("/v2/component", get(v2::components))
        .route("/v2/component/", get(v2::components))
        .route("/v2/component/{name}", get(v2::component))
        .route("/v2/task/{task_id}", get(v2::discover))
        .route("/v2/task/{task_id}/file/{file}", get(v2::discover_file))
        .route(
            "/v2/task/frameworks/{framework_id}/executors/{executor_id}/runs/{container_id}/{file}",
            get(v2::task_file),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "404 page not found") })
        .with_state(ctx)
}

/// An error answer: Go's `http.Error`, a line of text.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 500, logged with the cause.
    pub fn internal(what: &str, e: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "{what}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::debug!(status = %self.status, message = %self.message, "refused");
        }
        let mut resp = (self.status, format!("{}\n", self.message)).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        resp
    }
}

/// Where reading starts, before skips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// The first entry.
    Head,
    /// After the last entry.
    Tail,
    /// After the entry a cursor names.
    Cursor(Cursor),
    /// At the first line at or after a byte offset (one file).
    Offset(u64),
}

/// How entries are written.
pub enum Writer {
    /// Journal entries; `ids` puts cursors as event ids.
    Journal {
        /// Event ids.
        ids: bool,
    },
    /// Sandbox file lines (v2) with the run's fields.
    File {
        /// The run's fields.
        fields: Fields,
    },
}

/// What an empty range answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Empty {
    /// 204 (journal reads: "No match found").
    NoContent,
    /// 200 with no body (a v2 file read).
    Ok,
}

/// One read, parsed from a request.
pub struct Plan {
    /// The view.
    pub journal: Journal,
    /// Where it starts.
    pub start: Start,
    /// Entries skipped forwards first.
    pub skip_next: u64,
    /// Then entries skipped backwards.
    pub skip_prev: u64,
    /// Entries at most (`None`: up to the server's cap for a range, no end for a follow).
    pub limit: Option<u64>,
    /// Read backwards (ranges only).
    pub reverse: bool,
    /// Keep the answer open and send new entries.
    pub follow: bool,
    /// The answer's format.
    pub format: Format,
    /// How entries are written.
    pub writer: Writer,
    /// Answer with `X-Journal-Skip-Next` and `X-Journal-Skip-Prev`.
    pub skip_headers: bool,
    /// What an empty range answers.
    pub empty: Empty,
    /// While following, add unit logs that appear.
    pub rescan_units: bool,
}

/// Output gathered per batch before it is sent.
const BATCH_BYTES: usize = 64 * 1024;

struct Reader {
    plan: Plan,
    left: u64,
    boot_usec: u64,
    done: bool,
}

impl Reader {
    fn position(&mut self, cap: u64) -> std::io::Result<(u64, u64)> {
        let journal = &mut self.plan.journal;
        match &self.plan.start {
            Start::Head => journal.seek_head(),
            Start::Tail => journal.seek_tail()?,
            Start::Cursor(c) => journal.seek_cursor(c)?,
            Start::Offset(o) => journal.seek_offset(*o)?,
        }
        let next = journal.skip_next(self.plan.skip_next.min(cap))?;
        let prev = journal.skip_prev(self.plan.skip_prev.min(cap))?;
        // journald's reader stands on an entry and reads it first in either direction;
        // here a position is between entries, so a backward read that did not start at a
        // cursor begins with the entry after the position.
        if self.plan.reverse && !matches!(self.plan.start, Start::Cursor(_)) {
            journal.skip_next(1)?;
        }
        Ok((next, prev))
    }

    fn batch(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < BATCH_BYTES && self.left > 0 {
            let entry = if self.plan.reverse {
                self.plan.journal.prev_entry()?
            } else {
                self.plan.journal.next_entry()?
            };
            let Some(entry) = entry else {
                if !self.plan.follow {
                    self.done = true;
                }
                break;
            };
            match &self.plan.writer {
                Writer::Journal { ids } => {
                    format::journal_entry(&mut out, &entry, self.plan.format, *ids, self.boot_usec)
                }
                Writer::File { fields } => {
                    format::file_entry(&mut out, &entry, self.plan.format, fields)
                }
            }
            self.left -= 1;
        }
        if self.left == 0 {
            self.done = true;
        }
        Ok(out)
    }
}

/// Runs `f` on `reader` on the blocking pool and gives the reader back.
async fn blocking<T: Send + 'static>(
    mut reader: Reader,
    f: impl FnOnce(&mut Reader) -> std::io::Result<T> + Send + 'static,
) -> Result<(Reader, T), String> {
    let joined = tokio::task::spawn_blocking(move || {
        let out = f(&mut reader);
        (reader, out)
    })
    .await;
    match joined {
        Ok((reader, Ok(out))) => Ok((reader, out)),
        Ok((_, Err(e))) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Answers a read: positions, then a range or a follow.
pub async fn answer(ctx: Arc<Ctx>, plan: Plan) -> Response {
    let cap = ctx.tuning.max_entries;
    let left = match (plan.limit.filter(|&l| l > 0), plan.follow) {
        (Some(l), true) => l,
        (None, true) => u64::MAX,
        (l, false) => l.unwrap_or(cap).min(cap),
    };
    let (format, follow, skip_headers, empty) =
        (plan.format, plan.follow, plan.skip_headers, plan.empty);
    let reader = Reader {
        plan,
        left,
        boot_usec: ctx.node.boot_usec,
        done: false,
    };
    let started = blocking(reader, move |r| {
        let skipped = r.position(cap)?;
        let first = r.batch()?;
        Ok((skipped, first))
    })
    .await;
    let (reader, ((skipped_next, skipped_prev), first)) = match started {
        Ok(started) => started,
        Err(e) => return ApiError::internal("cannot read the logs", &e).into_response(),
    };
    if !follow && first.is_empty() && empty == Empty::NoContent {
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if skip_headers {
        headers.insert("X-Journal-Skip-Next", HeaderValue::from(skipped_next));
        headers.insert("X-Journal-Skip-Prev", HeaderValue::from(skipped_prev));
    }
    if follow {
        headers.insert("X-Accel-Buffering", HeaderValue::from_static("no"));
    }
    let state = Streaming {
        ctx,
        reader: Some(reader),
        first: Some(first),
        last_sent: Instant::now(),
        last_rescan: Instant::now(),
    };
    let body = Body::from_stream(futures::stream::unfold(state, Streaming::step));
    (headers, body).into_response()
}

/// A range or follow being sent.
struct Streaming {
    ctx: Arc<Ctx>,
    reader: Option<Reader>,
    first: Option<Vec<u8>>,
    last_sent: Instant,
    last_rescan: Instant,
}

impl Streaming {
    async fn step(mut self) -> Option<(Result<Bytes, std::io::Error>, Streaming)> {
        if let Some(first) = self.first.take() {
            if !first.is_empty() {
                self.last_sent = Instant::now();
                return Some((Ok(Bytes::from(first)), self));
            }
        }
        loop {
            let reader = self.reader.take()?;
            if reader.done || self.ctx.shutdown.is_cancelled() {
                return None;
            }
            let follow = reader.plan.follow;
            let events = reader.plan.format == Format::Events;
            let rescan =
                reader.plan.rescan_units && self.last_rescan.elapsed() >= self.ctx.tuning.rescan;
            if rescan {
                self.last_rescan = Instant::now();
            }
            let (dir, node) = (self.ctx.logs_dir.clone(), self.ctx.node.clone());
            let read = blocking(reader, move |r| {
                if rescan {
                    select::rescan_units(&mut r.plan.journal, &dir, &node)?;
                }
                r.batch()
            })
            .await;
            let (reader, bytes) = match read {
                Ok(read) => read,
                Err(e) => {
                    // The status is sent: all that is left is to end the answer.
                    tracing::warn!(error = %e, "reading logs failed; ending the answer");
                    return None;
                }
            };
            self.reader = Some(reader);
            if !bytes.is_empty() {
                self.last_sent = Instant::now();
                return Some((Ok(Bytes::from(bytes)), self));
            }
            if !follow {
                return None;
            }
            if events && self.last_sent.elapsed() >= self.ctx.tuning.keepalive {
                self.last_sent = Instant::now();
                return Some((Ok(Bytes::from_static(format::KEEPALIVE)), self));
            }
            let poll = self.ctx.tuning.poll;
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = self.ctx.shutdown.cancelled() => return None,
            }
        }
    }
}

/// A parsed unsigned count parameter (`skip_prev`, `limit`): 400 naming it when not a number.
pub fn count(query: &Query, name: &str) -> Result<Option<u64>, ApiError> {
    match query.non_empty(name) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|e| {
            ApiError::bad_request(format!("Error parsing parameter `{name}`: {v:?}: {e}"))
        }),
    }
}

/// The `Last-Event-ID` a reconnecting event-stream client sends.
pub fn last_event_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The request's `Accept`.
pub fn accept(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests;
