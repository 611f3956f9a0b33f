//! The HTTP API of dcos-metrics 1.11 (`producers/http`), served on the node's unix socket
//! behind Admin Router (which strips `/system/v1/metrics`), and 61091's `/metrics`.
//!
//! Every JSON answer is `application/json; charset=UTF-8` and ends in a newline (Go's
//! encoder). A key with nothing behind it (an unknown container or metric, a node
//! collection that read nothing) is 204 with no body, as the real `http.Error(w, ..., 204)`
//! answers. The container routes exist on agents only; anything else is the real router's
//! `404 page not found`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::api::{now_secs, Ping};
use crate::collector::Collector;
use crate::Role;

/// The JSON content type the real producer sets.
pub const JSON: &str = "application/json; charset=UTF-8";
/// The Prometheus text format's content type.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bytes of a container id in a path at most.
pub const MAX_ID: usize = 255;
/// Bytes of a metric name in a path at most.
pub const MAX_METRIC: usize = crate::statsd::MAX_NAME;

/// The API of the unix socket: `/v0/ping`, `/v0/node`, and on agents `/v0/containers`,
/// `/v0/containers/{id}`, `/v0/containers/{id}/app`, `/v0/containers/{id}/app/{metric}`.
pub fn router(collector: Arc<Collector>) -> Router {
    let mut r = Router::new()
        .route("/v0/ping", get(ping))
        .route("/v0/node", get(node));
    if collector.config().role == Role::Agent {
        r = r
            .route("/v0/containers", get(containers))
            .route("/v0/containers/{id}", get(container))
            .route("/v0/containers/{id}/app", get(app))
            .route("/v0/containers/{id}/app/{metric}", get(app_metric));
    }
    r.fallback(not_found).with_state(collector)
}

/// 61091: `GET /metrics`.
pub fn prometheus_router(collector: Arc<Collector>) -> Router {
    Router::new()
        .route("/metrics", get(prometheus))
        .fallback(not_found)
        .with_state(collector)
}

fn json<T: Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(mut body) => {
            body.push(b'\n');
            ([(header::CONTENT_TYPE, JSON)], body).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an answer");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Failed to encode value to JSON\n",
            )
                .into_response()
        }
    }
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// Whether a path's container id could be one: Mesos container ids are UUIDs (nested ones
/// joined with `.`); anything else is unknown, hence 204 as the real store answers.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn ping() -> Response {
    json(&Ping {
        ok: true,
        timestamp: now_secs(),
    })
}

async fn node(State(c): State<Arc<Collector>>) -> Response {
    let m = c.node_message().await;
    if m.datapoints.is_empty() {
        return no_content();
    }
    json(&m)
}

async fn containers(State(c): State<Arc<Collector>>) -> Response {
    json(&c.container_ids().await)
}

async fn container(State(c): State<Arc<Collector>>, Path(id): Path<String>) -> Response {
    if !plausible_id(&id) {
        return no_content();
    }
    match c.container_message(&id).await {
        Some(m) => json(&m),
        None => no_content(),
    }
}

async fn app(State(c): State<Arc<Collector>>, Path(id): Path<String>) -> Response {
    if !plausible_id(&id) {
        return no_content();
    }
    match c.app_message(&id, None).await {
        Some(m) => json(&m),
        None => no_content(),
    }
}

async fn app_metric(
    State(c): State<Arc<Collector>>,
    Path((id, metric)): Path<(String, String)>,
) -> Response {
    if !plausible_id(&id) || metric.is_empty() || metric.len() > MAX_METRIC {
        return no_content();
    }
    match c.app_message(&id, Some(&metric)).await {
        Some(m) => json(&m),
        None => no_content(),
    }
}

async fn prometheus(State(c): State<Arc<Collector>>) -> Response {
    ([(header::CONTENT_TYPE, PROMETHEUS)], c.prometheus().await).into_response()
}

#[cfg(test)]
mod tests;
