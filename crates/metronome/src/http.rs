//! Metronome 0.4.5's REST API (`api/src/main/resources/routes`): jobs, schedules, runs, the
//! launch queue, `/v0/scheduled-jobs`, `/ping`, `/info`, `/v1/metrics`; Metronome's status
//! codes and bodies, and its `{"message":"Unknown route.","requestPath":..}` for anything else.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::{self, Embed, JobSpec, ScheduledJobSpec};
use crate::engine::{unknown_job, unknown_schedule, with_next_run, ApiError, Metronome};
use crate::state::Job;
use crate::validate;

/// The REST routes of a leading Metronome.
pub fn router(m: Metronome) -> Router {
    Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route("/info", get(info))
        .route("/v1/metrics", get(metrics))
        .route("/v1/queue", get(queue))
        .route("/v1/jobs", get(list_jobs).post(create_job))
        .route(
            "/v1/jobs/{id}",
            get(get_job).put(update_job).delete(delete_job),
        )
        .route(
            "/v1/jobs/{id}/schedules",
            get(get_schedules).post(create_schedule),
        )
        .route(
            "/v1/jobs/{id}/schedules/{sid}",
            get(get_schedule)
                .put(update_schedule)
                .delete(delete_schedule),
        )
        .route("/v1/jobs/{id}/runs", get(get_runs).post(start_run))
        .route("/v1/jobs/{id}/runs/{rid}", get(get_run))
        .route("/v1/jobs/{id}/runs/{rid}/actions/stop", post(stop_run))
        .route("/v0/scheduled-jobs", post(create_scheduled))
        .route("/v0/scheduled-jobs/{id}", put(update_scheduled))
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_route)
        .with_state(m)
}

/// Play's answer to a request no route takes.
pub async fn unknown_route(uri: Uri) -> Response {
    let body = json!({"message": "Unknown route.", "requestPath": escape(uri.path())});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// As Metronome's error handler, strings echoed from the request are HTML-escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

fn client_error(status: StatusCode, message: &str, path: &str) -> Response {
    let body = json!({"message": escape(message), "requestPath": escape(path)});
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Invalid(r) => {
                tracing::debug!(details = ?r.details, "refused an invalid body");
                (StatusCode::UNPROCESSABLE_ENTITY, Json(r.to_json())).into_response()
            }
            ApiError::NotFound(body) => (StatusCode::NOT_FOUND, Json(body)).into_response(),
            ApiError::Conflict(message) => {
                (StatusCode::CONFLICT, Json(json!({"message": message}))).into_response()
            }
            ApiError::Internal(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"message": message})),
            )
                .into_response(),
        }
    }
}

fn ok<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (status, Json(body)).into_response()
}

/// A path's job id, checked as Metronome's path binder checks it (400 otherwise).
fn job_id(id: &str, uri: &Uri) -> Result<(), Response> {
    if validate::is_job_id(id) {
        Ok(())
    } else {
        Err(client_error(
            StatusCode::BAD_REQUEST,
            &format!("Not a valid id: {id}"),
            uri.path(),
        ))
    }
}

/// A JSON body (400 as Play's JSON parser answers otherwise).
fn body(bytes: &Bytes, uri: &Uri) -> Result<Value, Response> {
    serde_json::from_slice(bytes).map_err(|e| {
        client_error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid Json: {e}"),
            uri.path(),
        )
    })
}

/// `embed=` values, repeated or comma-separated.
fn embeds(query: Option<&str>, uri: &Uri) -> Result<BTreeSet<Embed>, Response> {
    let mut out = BTreeSet::new();
    for pair in query.unwrap_or_default().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "embed" {
            continue;
        }
        for name in v.split(',').filter(|n| !n.is_empty()) {
            match Embed::parse(name) {
                Some(e) => {
                    out.insert(e);
                }
                None => {
                    let names: Vec<&str> = Embed::ALL.iter().map(|(_, n)| *n).collect();
                    let message = format!(
                        "Unknown embed options. Valid options are: {}",
                        names.join(", ")
                    );
                    return Err(client_error(StatusCode::BAD_REQUEST, &message, uri.path()));
                }
            }
        }
    }
    Ok(out)
}

fn query_flag(query: Option<&str>, name: &str) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .any(|(k, v)| k == name && v.eq_ignore_ascii_case("true"))
}

async fn info() -> Response {
    ok(
        StatusCode::OK,
        &api::Info {
            version: api::VERSION.into(),
            lib_version: api::LIB_VERSION.into(),
        },
    )
}

async fn metrics(State(m): State<Metronome>) -> Response {
    let (jobs, runs) = {
        let s = m.lock().await;
        (s.jobs.len() as f64, s.runs.len() as f64)
    };
    let gauges = [
        ("dcos.metronome.jobs", jobs),
        ("dcos.metronome.jobrun.active", runs),
        ("dcos.metronome.uptime-secs", m.uptime().as_secs_f64()),
    ];
    ok(StatusCode::OK, &m.metrics().to_json(&gauges))
}

async fn queue(State(m): State<Metronome>) -> Response {
    ok(StatusCode::OK, &m.queue().await)
}

async fn list_jobs(State(m): State<Metronome>, RawQuery(q): RawQuery, uri: Uri) -> Response {
    match embeds(q.as_deref(), &uri) {
        Ok(e) => ok(StatusCode::OK, &m.jobs(&e).await),
        Err(r) => r,
    }
}

async fn get_job(
    State(m): State<Metronome>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    uri: Uri,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    let e = match embeds(q.as_deref(), &uri) {
        Ok(e) => e,
        Err(r) => return r,
    };
    match m.job(&id, &e).await {
        Some(j) => ok(StatusCode::OK, &j),
        None => unknown_job(&id).into_response(),
    }
}

async fn create_job(State(m): State<Metronome>, uri: Uri, bytes: Bytes) -> Response {
    let value = match body(&bytes, &uri) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let spec = match validate::job(&value, None) {
        Ok(s) => s,
        Err(r) => return ApiError::Invalid(r).into_response(),
    };
    let job = Job {
        spec,
        schedules: Vec::new(),
    };
    match m.create_job(job).await {
        Ok(j) => ok(StatusCode::CREATED, &j.spec),
        Err(e) => e.into_response(),
    }
}

async fn update_job(
    State(m): State<Metronome>,
    Path(id): Path<String>,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    let value = match body(&bytes, &uri) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let spec: JobSpec = match validate::job(&value, Some(&id)) {
        Ok(s) => s,
        Err(r) => return ApiError::Invalid(r).into_response(),
    };
    let updated = m
        .update_job(&id, |old| {
            Ok(Job {
                spec,
                schedules: old.schedules.clone(),
            })
        })
        .await;
    match updated {
        Ok(j) => ok(StatusCode::OK, &j.spec),
        Err(e) => e.into_response(),
    }
}

async fn delete_job(
    State(m): State<Metronome>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    uri: Uri,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    let stop = query_flag(q.as_deref(), "stopCurrentJobRuns");
    match m.delete_job(&id, stop).await {
        Ok(j) => ok(StatusCode::OK, &j.spec),
        Err(e) => e.into_response(),
    }
}

async fn get_schedules(State(m): State<Metronome>, Path(id): Path<String>, uri: Uri) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    match m.schedules(&id).await {
        Ok(s) => ok(StatusCode::OK, &s),
        Err(e) => e.into_response(),
    }
}

async fn get_schedule(
    State(m): State<Metronome>,
    Path((id, sid)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    match m.schedules(&id).await {
        Ok(list) => match list.into_iter().find(|s| s.id == sid) {
            Some(s) => ok(StatusCode::OK, &s),
            None => unknown_schedule(&sid).into_response(),
        },
        Err(e) => e.into_response(),
    }
}

async fn create_schedule(
    State(m): State<Metronome>,
    Path(id): Path<String>,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    let value = match body(&bytes, &uri) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let schedule = match validate::schedule(&value, None) {
        Ok(s) => s,
        Err(r) => return ApiError::Invalid(r).into_response(),
    };
    let sid = schedule.id.clone();
    let updated = m
        .update_job(&id, |old| {
            if old.schedules.iter().any(|s| s.id == schedule.id) {
                return Err(ApiError::Conflict(format!(
                    "requirement failed: A schedule with id {} already exists",
                    schedule.id
                )));
            }
            if !old.schedules.is_empty() {
                return Err(ApiError::Conflict(
                    "requirement failed: Only one schedule supported at the moment".into(),
                ));
            }
            let mut new = old.clone();
            new.schedules.insert(0, schedule);
            Ok(new)
        })
        .await;
    schedule_answer(&m, updated, &sid, StatusCode::CREATED)
}

fn schedule_answer(
    m: &Metronome,
    updated: Result<Job, ApiError>,
    sid: &str,
    status: StatusCode,
) -> Response {
    match updated {
        Ok(job) => match job.schedules.into_iter().find(|s| s.id == sid) {
            Some(s) => ok(status, &with_next_run(s, m.clock().now())),
            None => unknown_schedule(sid).into_response(),
        },
        Err(e) => e.into_response(),
    }
}

async fn update_schedule(
    State(m): State<Metronome>,
    Path((id, sid)): Path<(String, String)>,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    let value = match body(&bytes, &uri) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let schedule = match validate::schedule(&value, Some(&sid)) {
        Ok(s) => s,
        Err(r) => return ApiError::Invalid(r).into_response(),
    };
    let updated = m
        .update_job(&id, |old| {
            if !old.schedules.iter().any(|s| s.id == sid) {
                return Err(unknown_schedule(&sid));
            }
            let mut new = old.clone();
            new.schedules.retain(|s| s.id != sid);
            new.schedules.insert(0, schedule);
            Ok(new)
        })
        .await;
    schedule_answer(&m, updated, &sid, StatusCode::OK)
}

async fn delete_schedule(
    State(m): State<Metronome>,
    Path((id, sid)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    let updated = m
        .update_job(&id, |old| {
            if !old.schedules.iter().any(|s| s.id == sid) {
                return Err(unknown_schedule(&sid));
            }
            let mut new = old.clone();
            new.schedules.retain(|s| s.id != sid);
            Ok(new)
        })
        .await;
    match updated {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn get_runs(State(m): State<Metronome>, Path(id): Path<String>, uri: Uri) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    match m.runs(&id).await {
        Ok(runs) => {
            let runs: Vec<api::JobRun> = runs.iter().map(|r| r.to_api()).collect();
            ok(StatusCode::OK, &runs)
        }
        Err(e) => e.into_response(),
    }
}

async fn start_run(State(m): State<Metronome>, Path(id): Path<String>, uri: Uri) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    match m.start_run(&id, None).await {
        Ok(run) => ok(StatusCode::CREATED, &run.to_api()),
        Err(e) => e.into_response(),
    }
}

async fn get_run(
    State(m): State<Metronome>,
    Path((id, rid)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    match m.run(&id, &rid).await {
        Ok(run) => ok(StatusCode::OK, &run.to_api()),
        Err(e) => e.into_response(),
    }
}

async fn stop_run(
    State(m): State<Metronome>,
    Path((id, rid)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    match m.stop_run(&id, &rid).await {
        Ok(run) => ok(StatusCode::OK, &run.to_api()),
        Err(e) => e.into_response(),
    }
}

fn scheduled_answer(m: &Metronome, job: Job, status: StatusCode) -> Response {
    let now = m.clock().now();
    let out = ScheduledJobSpec {
        id: job.spec.id,
        description: job.spec.description,
        labels: job.spec.labels,
        schedules: job
            .schedules
            .into_iter()
            .map(|s| with_next_run(s, now))
            .collect(),
        run: job.spec.run,
    };
    ok(status, &out)
}

fn job_of(s: ScheduledJobSpec) -> Job {
    Job {
        spec: JobSpec {
            id: s.id,
            description: s.description,
            labels: s.labels,
            run: s.run,
        },
        schedules: s.schedules,
    }
}

async fn create_scheduled(State(m): State<Metronome>, uri: Uri, bytes: Bytes) -> Response {
    let value = match body(&bytes, &uri) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let spec = match validate::scheduled_job(&value, None) {
        Ok(s) => s,
        Err(r) => return ApiError::Invalid(r).into_response(),
    };
    match m.create_job(job_of(spec)).await {
        Ok(j) => scheduled_answer(&m, j, StatusCode::CREATED),
        Err(e) => e.into_response(),
    }
}

async fn update_scheduled(
    State(m): State<Metronome>,
    Path(id): Path<String>,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    if let Err(r) = job_id(&id, &uri) {
        return r;
    }
    let value = match body(&bytes, &uri) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let spec = match validate::scheduled_job(&value, Some(&id)) {
        Ok(s) => s,
        Err(r) => return ApiError::Invalid(r).into_response(),
    };
    let job = job_of(spec);
    match m.update_job(&id, |_| Ok(job)).await {
        Ok(j) => scheduled_answer(&m, j, StatusCode::OK),
        Err(e) => e.into_response(),
    }
}
