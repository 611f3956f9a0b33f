//! The agent's HTTP API on 5051: its state, the files API of sandboxes, resource statistics
//! of running containers, its metrics (`/metrics/snapshot`), the v1 operator API
//! (`POST /api/v1`) and the executor API (`POST /api/v1/executor`).

mod metrics;
mod operator;
mod state;
mod statistics;

pub(crate) use statistics::DiskUsage;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::state::Shared;
use super::{executor, files};

/// Every route of the agent.
pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/state", get(state::state))
        .route("/state.json", get(state::state))
        .route("/slave(1)/state", get(state::state))
        .route("/slave(1)/state.json", get(state::state))
        .route("/files/browse", get(files::browse))
        .route("/files/browse.json", get(files::browse))
        .route("/files/read", get(files::read_file))
        .route("/files/read.json", get(files::read_file))
        .route("/files/download", get(files::download))
        .route("/files/download.json", get(files::download))
        .route("/monitor/statistics", get(statistics::statistics_endpoint))
        .route(
            "/monitor/statistics.json",
            get(statistics::statistics_endpoint),
        )
        .route("/containers", get(statistics::containers))
        .route("/metrics/snapshot", get(metrics::snapshot))
        .route("/slave(1)/metrics/snapshot", get(metrics::snapshot))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/slave(1)/health", get(|| async { StatusCode::OK }))
        .route("/version", get(|| async { Json(version()) }))
        .route("/api/v1", post(operator::operator))
        .route("/api/v1/executor", post(executor::endpoint::api))
        .with_state(shared)
}

/// The version the agent reports: the master's, as in Mesos they are one build.
fn version() -> Value {
    crate::master::views::version()
}
