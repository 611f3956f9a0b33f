//! The `/v2` REST API, `/ping`, `/metrics` and the `/v2/events` stream, with Marathon 1.6's
//! paths, JSON shapes, status codes and error bodies.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use dcos_serve::query::Query;

use crate::api::{self, AppSpec};
use crate::engine::{ApiError, Marathon};
use crate::state::{AppEntry, Deployment, Instance, State};

/// SSE heartbeat period (Marathon's Jetty event source sends one every 10 s).
const SSE_HEARTBEAT: Duration = Duration::from_secs(10);

/// The routes, testable without a socket.
pub fn router(m: Marathon) -> Router {
    Router::new()
        .route("/", get(web_ui))
        .route("/assets/{*file}", get(web_ui))
        .route("/ping", get(ping))
        .route("/metrics", get(metrics))
        .route("/v2/info", get(info))
        .route("/v2/leader", get(leader))
        .route("/v2/apps", get(list_apps).post(create_app))
        .route("/v2/apps/", get(list_apps).post(create_app))
        .route("/v2/apps/{*rest}", any(app_route))
        .route("/v2/tasks", get(list_tasks))
        .route("/v2/tasks/delete", post(delete_tasks))
        .route("/v2/deployments", get(list_deployments))
        .route(
            "/v2/deployments/{id}",
            axum::routing::delete(delete_deployment),
        )
        .route("/v2/queue", get(queue))
        .route("/v2/queue/{*rest}", axum::routing::delete(reset_delay))
        .route("/v2/groups", get(groups_root))
        .route("/v2/groups/{*rest}", get(groups))
        .route("/v2/events", get(events))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(to_completion))
        .layer(axum::middleware::map_response(no_cache))
        .with_state(m)
}

/// Marathon's web UI (apps, deployments, queue), which reads Marathon's own API.
async fn web_ui(uri: Uri, headers: HeaderMap) -> Response {
    let if_none_match = headers.get(header::IF_NONE_MATCH);
    match dcos_ui::response(dcos_ui::View::Marathon, uri.path(), if_none_match) {
        Some(resp) => resp.map(axum::body::Body::from),
        None => not_found(uri).await,
    }
}

/// A request that changes state runs to its end even if its client goes away first: its
/// store write and its change in memory then always happen together (a handler dropped
/// between the two would leave them apart). Reads, and the event stream, stay tied to their
/// client.
async fn to_completion(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "a Marathon API request failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Marathon marks every API answer uncacheable.
async fn no_cache(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    resp
}

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({"message": text.into()}))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Invalid(r) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"message": r.message, "details": r.details})),
            )
                .into_response(),
            ApiError::NotFound(m) => message(StatusCode::NOT_FOUND, m),
            ApiError::Locked {
                message: m,
                deployments,
            } => (
                StatusCode::CONFLICT,
                Json(json!({"message": m, "deployments": deployments.iter().map(|d| json!({"id": d})).collect::<Vec<_>>()})),
            )
                .into_response(),
            ApiError::Conflict(m) => message(StatusCode::CONFLICT, m),
            ApiError::BadRequest(m) => message(StatusCode::BAD_REQUEST, m),
            ApiError::Internal(m) => message(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

async fn not_found(uri: Uri) -> Response {
    message(
        StatusCode::NOT_FOUND,
        format!("URI not found: {}", uri.path()),
    )
}

/// Parses an app body as Marathon does: syntax errors are 400, type errors 422.
pub(crate) fn parse_spec(body: &Bytes) -> Result<AppSpec, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err((
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Please specify data in JSON format", "details": "No content to map due to end-of-input"})),
        )
            .into_response());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Invalid JSON", "details": e.to_string()})),
        )
            .into_response()
    })?;
    // JSON null for an optional field means the field is absent, as in Marathon.
    let value = strip_nulls(value);
    if !value.is_object() {
        return Err(type_error("", "error.expected.jsobject"));
    }
    serde_path_to_error::deserialize::<_, AppSpec>(value).map_err(|e| {
        let path = marathon_path(e.path());
        let text = e.inner().to_string();
        let key =
            if text.contains("expected a string") || text.contains("expected a borrowed string") {
                "error.expected.jsstring"
            } else if text.contains("expected a sequence") {
                "error.expected.jsarray"
            } else if text.contains("expected a boolean") {
                "error.expected.jsboolean"
            } else if text.contains("expected struct") || text.contains("expected a map") {
                "error.expected.jsobject"
            } else if text.contains("missing field") {
                "error.path.missing"
            } else if text.contains("unknown field") || text.contains("unknown variant") {
                "error.unknown.enum.literal"
            } else if text.starts_with("invalid value: integer `-") {
                // A negative count or duration: every such field has `minimum: 0`.
                "error.min"
            } else if text.starts_with("invalid value: integer")
                || text.starts_with("invalid type: floating point")
            {
                // Out of the integer type's range, or a fraction: Play's `Reads[Int]`.
                "error.expected.int"
            } else {
                "error.expected.jsnumber"
            };
        type_error(&path, key)
    })
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn type_error(path: &str, key: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"message": "Invalid JSON", "details": [{"path": path, "errors": [key]}]})),
    )
        .into_response()
}

/// `portDefinitions[0].port` as Marathon writes it: `/portDefinitions(0)/port`.
fn marathon_path(p: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in p.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("({index})")),
            serde_path_to_error::Segment::Map { key } => {
                out.push('/');
                out.push_str(key);
            }
            serde_path_to_error::Segment::Enum { variant } => {
                out.push('/');
                out.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

/// `{"version", "deploymentId"}` with the `Marathon-Deployment-Id` header.
fn deployment_result(status: StatusCode, d: &Deployment) -> Response {
    let mut resp = (
        status,
        Json(json!({"version": d.version, "deploymentId": d.id})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&d.id) {
        resp.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    resp
}

// === /ping, /metrics, /v2/info, /v2/leader ===

async fn ping(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if accept.contains("application/json") && !accept.contains("text/") {
        return Json("pong").into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "pong",
    )
        .into_response()
}

async fn metrics(AxState(m): AxState<Marathon>) -> Response {
    let s = m.lock().await;
    let now = api::now();
    let gauge = |v: usize| json!({"value": v});
    Json(json!({
        "version": "4.0.0",
        "start": api::timestamp(std::time::SystemTime::now() - m.started.elapsed()),
        "end": now,
        "counters": {},
        "gauges": {
            "marathon.apps.active.gauge": gauge(s.apps.len()),
            "marathon.deployments.active.gauge": gauge(s.deployments.len()),
            "marathon.instances.running.gauge": gauge(s.instances.values().filter(|i| i.state == "TASK_RUNNING").count()),
            "marathon.instances.staged.gauge": gauge(s.instances.values().filter(|i| i.state == "TASK_STAGING").count()),
            "marathon.uptime.gauge": json!({"value": m.started.elapsed().as_millis() as u64, "unit": "ms"}),
        },
        "histograms": {},
        "meters": {},
        "timers": {},
    }))
    .into_response()
}

fn leader_of(m: &Marathon) -> String {
    format!("{}:{}", m.settings.hostname, m.settings.http_port)
}

async fn info(AxState(m): AxState<Marathon>) -> Response {
    let framework_id = m.lock().await.framework_id.clone();
    let masters: Vec<String> = m.settings.masters.iter().map(|a| a.to_string()).collect();
    Json(json!({
        "name": "marathon",
        "version": api::MARATHON_VERSION,
        "buildref": "dcos-rs",
        "elected": true,
        "leader": leader_of(&m),
        "frameworkId": framework_id,
        "marathon_config": {
            "checkpoint": true,
            "decline_offer_duration": 5000,
            "env_vars_prefix": null,
            "executor": "//cmd",
            "failover_timeout": 604800,
            "features": [],
            "framework_name": m.settings.framework_name,
            "ha": m.settings.ha,
            "hostname": m.settings.hostname,
            "local_port_max": api::SERVICE_PORT_MAX,
            "local_port_min": api::SERVICE_PORT_MIN,
            "master": masters.join(","),
            "mesos_leader_ui_url": m.master().map(|a| format!("http://{a}/")),
            "mesos_role": null,
            "mesos_user": "root",
            "webui_url": null,
        },
        "zookeeper_config": {},
        "http_config": {"http_port": m.settings.http_port, "https_port": 8443},
    }))
    .into_response()
}

async fn leader(AxState(m): AxState<Marathon>) -> Response {
    Json(json!({"leader": leader_of(&m)})).into_response()
}

// === apps ===

/// What to embed in app JSON.
#[derive(Default, Clone, Copy)]
struct Embed {
    counts: bool,
    deployments: bool,
    tasks: bool,
    last_failure: bool,
    task_stats: bool,
    readiness: bool,
}

impl Embed {
    fn from_query(q: &Query, single: bool) -> Embed {
        let mut e = Embed {
            counts: true,
            deployments: true,
            tasks: single,
            last_failure: single,
            ..Embed::default()
        };
        for v in q.all("embed") {
            let v = v
                .trim_start_matches("apps.")
                .trim_start_matches("app.")
                .trim_start_matches("group.apps.");
            match v {
                "tasks" => {
                    e.tasks = true;
                    e.deployments = true;
                }
                "counts" => e.counts = true,
                "deployments" => e.deployments = true,
                "lastTaskFailure" => e.last_failure = true,
                "taskStats" => e.task_stats = true,
                "readiness" => e.readiness = true,
                "failures" => {
                    e.tasks = true;
                    e.last_failure = true;
                    e.deployments = true;
                }
                _ => {}
            }
        }
        e
    }
}

fn instance_json(s: &State, i: &Instance, with_service_ports: bool) -> Value {
    let entry = s.apps.get(&i.app_id);
    let service: Vec<u32> = if with_service_ports {
        entry
            .map(|e| e.app.port_definitions.iter().map(|p| p.port).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut v = i.to_json(entry.map(|e| &e.app), &service);
    if v.get("healthCheckResults").is_none() {
        v["healthCheckResults"] = json!([]);
    }
    v
}

fn app_json(s: &State, e: &AppEntry, embed: Embed) -> Value {
    let mut v = serde_json::to_value(&e.app).unwrap_or_default();
    let mine: Vec<&Instance> = s
        .instances
        .values()
        .filter(|i| i.app_id == e.app.id)
        .collect();
    if embed.counts {
        let staged = mine.iter().filter(|i| i.state == "TASK_STAGING").count();
        let running = mine.iter().filter(|i| i.state == "TASK_RUNNING").count();
        let probed = |i: &&&Instance| !i.health.is_empty() && i.health.iter().all(|h| h.probed);
        let healthy = mine
            .iter()
            .filter(probed)
            .filter(|i| i.health.iter().all(|h| h.alive))
            .count();
        let unhealthy = mine
            .iter()
            .filter(|i| i.health.iter().any(|h| h.probed && !h.alive))
            .count();
        v["tasksStaged"] = json!(staged);
        v["tasksRunning"] = json!(running);
        v["tasksHealthy"] = json!(healthy);
        v["tasksUnhealthy"] = json!(unhealthy);
    }
    if embed.deployments {
        let ds: Vec<Value> = s
            .deployments
            .values()
            .filter(|d| d.app_id == e.app.id)
            .map(|d| json!({"id": d.id}))
            .collect();
        v["deployments"] = json!(ds);
    }
    if embed.readiness {
        v["readinessCheckResults"] = json!([]);
    }
    if embed.tasks {
        v["tasks"] = json!(mine
            .iter()
            .map(|i| instance_json(s, i, false))
            .collect::<Vec<_>>());
    }
    if embed.last_failure {
        if let Some(f) = &e.last_failure {
            v["lastTaskFailure"] = f.clone();
        }
    }
    if embed.task_stats {
        v["taskStats"] = json!({});
    }
    v
}

async fn list_apps(AxState(m): AxState<Marathon>, RawQuery(q): RawQuery) -> Response {
    let q = Query::parse(q.as_deref());
    let embed = Embed::from_query(&q, false);
    let cmd = q.get("cmd").map(str::to_lowercase);
    let id = q.get("id").map(str::to_lowercase);
    let label = q.get("label").map(str::to_string);
    let s = m.lock().await;
    let apps: Vec<Value> = s
        .apps
        .values()
        .filter(|e| !e.deleting)
        .filter(|e| {
            cmd.as_ref().is_none_or(|c| {
                e.app
                    .cmd
                    .as_deref()
                    .unwrap_or("")
                    .to_lowercase()
                    .contains(c)
            })
        })
        .filter(|e| {
            id.as_ref()
                .is_none_or(|i| e.app.id.to_lowercase().contains(i))
        })
        .filter(|e| {
            label
                .as_ref()
                .is_none_or(|l| label_matches(&e.app.labels, l))
        })
        .map(|e| app_json(&s, e, embed))
        .collect();
    Json(json!({"apps": apps})).into_response()
}

/// Marathon's label selector: `key`, `key==value`, `key!=value`, comma-separated (all must hold).
fn label_matches(labels: &BTreeMap<String, String>, selector: &str) -> bool {
    selector.split(',').map(str::trim).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels.get(k.trim()).is_some_and(|x| x != v.trim())
        } else if let Some((k, v)) = term.split_once("==") {
            labels.get(k.trim()).is_some_and(|x| x == v.trim())
        } else {
            labels.contains_key(term)
        }
    })
}

async fn create_app(AxState(m): AxState<Marathon>, headers: HeaderMap, body: Bytes) -> Response {
    let spec = match parse_spec(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if spec.id.is_none() {
        return type_error("/id", "error.path.missing");
    }
    match m.create_app(spec).await {
        Ok((app, d)) => {
            let s = m.lock().await;
            let body = match s.apps.get(&app.id) {
                Some(e) => app_json(
                    &s,
                    e,
                    Embed {
                        counts: true,
                        deployments: true,
                        tasks: true,
                        ..Embed::default()
                    },
                ),
                None => serde_json::to_value(&app).unwrap_or_default(),
            };
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
                .to_string();
            let mut resp = (StatusCode::CREATED, Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("http://{host}/v2/apps{}", app.id)) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&d.id) {
                resp.headers_mut().insert("Marathon-Deployment-Id", v);
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// Everything under `/v2/apps/`: app ids are paths, so the suffix decides the resource.
async fn app_route(
    AxState(m): AxState<Marathon>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let q = Query::parse(q.as_deref());
    let rest = format!("/{}", rest.trim_end_matches('/'));
    let force = q.flag("force", false);
    if let Some(id) = rest.strip_suffix("/restart") {
        if method != Method::POST {
            return message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        return match m.restart_app(id, force).await {
            Ok(d) => deployment_result(StatusCode::OK, &d),
            Err(e) => e.into_response(),
        };
    }
    if let Some(id) = rest.strip_suffix("/tasks") {
        return app_tasks(&m, &method, id, None, &q).await;
    }
    if let Some((id, task)) = rest.rsplit_once("/tasks/") {
        return app_tasks(&m, &method, id, Some(task), &q).await;
    }
    if let Some(id) = rest.strip_suffix("/versions") {
        let s = m.lock().await;
        return match s.apps.get(id).filter(|e| !e.deleting) {
            Some(e) => {
                let mut vs: Vec<&String> = e.versions.keys().collect();
                vs.reverse();
                Json(json!({"versions": vs})).into_response()
            }
            None => message(StatusCode::NOT_FOUND, format!("App '{id}' does not exist")),
        };
    }
    if let Some((id, version)) = rest.rsplit_once("/versions/") {
        let s = m.lock().await;
        return match s.apps.get(id).filter(|e| !e.deleting) {
            Some(e) => match e.versions.get(version) {
                Some(app) => Json(serde_json::to_value(app).unwrap_or_default()).into_response(),
                None => message(
                    StatusCode::NOT_FOUND,
                    format!("App '{id}' does not exist in version {version}"),
                ),
            },
            None => message(StatusCode::NOT_FOUND, format!("App '{id}' does not exist")),
        };
    }
    let id = api::canonical_id(&rest, "/");
    match method {
        Method::GET => {
            let s = m.lock().await;
            if let Some(group) = id.strip_suffix("/*") {
                let apps: Vec<Value> = s
                    .apps
                    .values()
                    .filter(|e| !e.deleting && e.app.id.starts_with(&format!("{group}/")))
                    .map(|e| app_json(&s, e, Embed::from_query(&q, false)))
                    .collect();
                return Json(json!({"*": apps})).into_response();
            }
            match s.apps.get(&id).filter(|e| !e.deleting) {
                Some(e) => Json(json!({"app": app_json(&s, e, Embed::from_query(&q, true))}))
                    .into_response(),
                None => message(StatusCode::NOT_FOUND, format!("App '{id}' does not exist")),
            }
        }
        Method::PUT | Method::PATCH => {
            let spec = match parse_spec(&body) {
                Ok(s) => s,
                Err(r) => return r,
            };
            if let Some(version) = spec.version.clone() {
                // `{"version": ts}` rolls the app back to that version.
                return match m.rollback_app(&id, &version, force).await {
                    Ok(d) => deployment_result(StatusCode::OK, &d),
                    Err(e) => e.into_response(),
                };
            }
            if method == Method::PATCH && m.lock().await.apps.get(&id).is_none_or(|e| e.deleting) {
                return message(StatusCode::NOT_FOUND, format!("App '{id}' does not exist"));
            }
            // A PUT merges into the current definition unless `partialUpdate=false` makes
            // its body the whole definition (what the web UI's edit form sends); a PATCH
            // always merges.
            let partial = method == Method::PATCH || q.flag("partialUpdate", true);
            match m.update_app(&id, spec, partial, force).await {
                Ok((d, created)) => deployment_result(
                    if created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    &d,
                ),
                Err(e) => e.into_response(),
            }
        }
        Method::DELETE => match m.delete_app(&id, q.flag("force", true)).await {
            Ok(d) => deployment_result(StatusCode::OK, &d),
            Err(e) => e.into_response(),
        },
        _ => message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    }
}

async fn app_tasks(
    m: &Marathon,
    method: &Method,
    id: &str,
    task: Option<&str>,
    q: &Query,
) -> Response {
    let ids: Vec<String> = {
        let s = m.lock().await;
        if s.apps.get(id).is_none_or(|e| e.deleting) {
            return message(StatusCode::NOT_FOUND, format!("App '{id}' does not exist"));
        }
        let host = q.get("host");
        s.instances
            .values()
            .filter(|i| i.app_id == id)
            .filter(|i| task.is_none_or(|t| t == i.task_id))
            .filter(|i| host.is_none_or(|h| h == i.host))
            .map(|i| i.task_id.clone())
            .collect()
    };
    if let Some(t) = task {
        if ids.is_empty() {
            return message(StatusCode::NOT_FOUND, format!("Task '{t}' does not exist"));
        }
    }
    match *method {
        Method::GET => {
            let s = m.lock().await;
            let tasks: Vec<Value> = ids
                .iter()
                .filter_map(|t| s.instances.get(t))
                .map(|i| instance_json(&s, i, false))
                .collect();
            match task {
                Some(_) => Json(json!({"task": tasks.first()})).into_response(),
                None => Json(json!({"tasks": tasks})).into_response(),
            }
        }
        Method::DELETE => kill(m, &ids, q, task.is_some()).await,
        _ => message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    }
}

async fn kill(m: &Marathon, ids: &[String], q: &Query, single: bool) -> Response {
    let scale = q.flag("scale", false);
    let wipe = q.flag("wipe", false);
    if scale && wipe {
        return message(
            StatusCode::BAD_REQUEST,
            "You cannot use scale and wipe at the same time.",
        );
    }
    match m.kill_tasks(ids, scale, wipe, q.flag("force", false)).await {
        Ok((_, Some(d))) => deployment_result(StatusCode::OK, &d),
        Ok((killed, None)) => {
            let s = m.lock().await;
            let tasks: Vec<Value> = killed
                .iter()
                .map(|i| {
                    let mut v = instance_json(&s, i, false);
                    v["healthCheckResults"] = json!([]);
                    v
                })
                .collect();
            if single {
                Json(json!({"task": tasks.first()})).into_response()
            } else {
                Json(json!({"tasks": tasks})).into_response()
            }
        }
        Err(e) => e.into_response(),
    }
}

// === tasks ===

async fn list_tasks(AxState(m): AxState<Marathon>, RawQuery(q): RawQuery) -> Response {
    let q = Query::parse(q.as_deref());
    let wanted: HashSet<String> = q
        .all("status")
        .chain(q.all("status[]"))
        .map(|s| format!("TASK_{}", s.to_uppercase()))
        .collect();
    let s = m.lock().await;
    let tasks: Vec<Value> = s
        .instances
        .values()
        .filter(|i| wanted.is_empty() || wanted.contains(i.state.as_str()))
        .map(|i| instance_json(&s, i, true))
        .collect();
    Json(json!({"tasks": tasks})).into_response()
}

async fn delete_tasks(
    AxState(m): AxState<Marathon>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let q = Query::parse(q.as_deref());
    #[derive(serde::Deserialize)]
    struct Ids {
        ids: Vec<String>,
    }
    let ids: Ids = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": "Invalid JSON", "details": e.to_string()})),
            )
                .into_response()
        }
    };
    for id in &ids.ids {
        if !id.contains('.') && !id.contains('_') {
            return message(
                StatusCode::BAD_REQUEST,
                format!("Invalid task id '{id}'. [taskId {id} is no valid identifier]"),
            );
        }
    }
    kill(&m, &ids.ids, &q, false).await
}

// === deployments ===

async fn list_deployments(AxState(m): AxState<Marathon>) -> Response {
    let s = m.lock().await;
    Json(
        s.deployments
            .values()
            .map(Deployment::to_json)
            .collect::<Vec<_>>(),
    )
    .into_response()
}

async fn delete_deployment(
    AxState(m): AxState<Marathon>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = Query::parse(q.as_deref());
    match m.cancel_deployment(&id, q.flag("force", false)).await {
        Ok(Some(d)) => deployment_result(StatusCode::OK, &d),
        Ok(None) => StatusCode::ACCEPTED.into_response(),
        Err(e) => e.into_response(),
    }
}

// === queue ===

async fn queue(AxState(m): AxState<Marathon>) -> Response {
    let now = Instant::now();
    let now_secs = dcos_mesos_api::api::now_secs();
    let s = m.lock().await;
    let items: Vec<Value> = s
        .apps
        .values()
        .filter(|e| !e.deleting)
        .filter_map(|e| {
            let plan = s.plan(e, now, now_secs);
            let count = plan.launch + plan.waiting;
            if count == 0 {
                return None;
            }
            let (left, ready) = e.backoff.left(now);
            Some(json!({
                "count": count,
                "delay": {"timeLeftSeconds": left, "overdue": ready},
                "since": e.waiting_since.clone().unwrap_or_else(api::now),
                "processedOffersSummary": e.offers.to_json(),
                "app": serde_json::to_value(&e.app).unwrap_or_default(),
            }))
        })
        .collect();
    Json(json!({"queue": items})).into_response()
}

async fn reset_delay(AxState(m): AxState<Marathon>, Path(rest): Path<String>) -> Response {
    let Some(id) = rest.strip_suffix("/delay") else {
        return message(
            StatusCode::NOT_FOUND,
            format!("URI not found: /v2/queue/{rest}"),
        );
    };
    let id = api::canonical_id(id, "/");
    match m.reset_delay(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

// === groups ===

async fn groups_root(m: AxState<Marathon>) -> Response {
    group_json(m, "/").await
}

async fn groups(m: AxState<Marathon>, Path(rest): Path<String>) -> Response {
    group_json(m, &api::canonical_id(&rest, "/")).await
}

async fn group_json(AxState(m): AxState<Marathon>, id: &str) -> Response {
    let s = m.lock().await;
    let prefix = if id == "/" {
        "/".to_string()
    } else {
        format!("{id}/")
    };
    let exists = id == "/" || s.apps.keys().any(|a| a.starts_with(&prefix));
    if !exists {
        return message(
            StatusCode::NOT_FOUND,
            format!("Group '{id}' does not exist"),
        );
    }
    Json(build_group(&s, id)).into_response()
}

/// A group and its subgroups, derived from the app paths under it.
fn build_group(s: &State, id: &str) -> Value {
    let prefix = if id == "/" {
        "/".to_string()
    } else {
        format!("{id}/")
    };
    let mut apps = Vec::new();
    let mut subgroups: Vec<String> = Vec::new();
    let mut version = String::new();
    for e in s
        .apps
        .values()
        .filter(|e| !e.deleting && e.app.id.starts_with(&prefix))
    {
        let rest = &e.app.id[prefix.len()..];
        match rest.split_once('/') {
            None => apps.push(serde_json::to_value(&e.app).unwrap_or_default()),
            Some((child, _)) => {
                let child = format!("{prefix}{child}");
                if !subgroups.contains(&child) {
                    subgroups.push(child);
                }
            }
        }
        if e.app.version > version {
            version = e.app.version.clone();
        }
    }
    json!({
        "id": id,
        "dependencies": [],
        "version": if version.is_empty() { api::now() } else { version },
        "apps": apps,
        "groups": subgroups.iter().map(|g| build_group(s, g)).collect::<Vec<_>>(),
        "pods": [],
    })
}

// === events ===

async fn events(AxState(m): AxState<Marathon>, req: axum::extract::Request) -> Response {
    let headers = req.headers();
    let q = req.uri().query().map(str::to_string);
    let addr = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .copied();
    let wants_sse = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().starts_with("text/event-stream"));
    if !wants_sse {
        return message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let q = Query::parse(q.as_deref());
    let filter: HashSet<String> = q.all("event_type").map(str::to_string).collect();
    let mut rx = m.subscribe_events();
    let remote = addr.map(|a| a.0.ip().to_string()).unwrap_or_default();
    m.emit("event_stream_attached", json!({"remoteAddress": remote}));
    let stop = m.shutdown.clone();
    let stream = async_stream(move |tx| async move {
        let mut beat = tokio::time::interval(SSE_HEARTBEAT);
        beat.tick().await;
        loop {
            let frame = tokio::select! {
                _ = stop.cancelled() => return,
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if !filter.is_empty() && !filter.contains(&ev.kind) {
                            continue;
                        }
                        format!("event: {}\r\ndata: {}\r\n\r\n", ev.kind, ev.data)
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
                _ = beat.tick() => "\r\n".to_string(),
            };
            if tx
                .send(Ok::<_, Infallible>(Bytes::from(frame)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream;charset=UTF-8")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A stream fed by a spawned producer through a bounded channel; the producer stops when
/// the client goes away (its sends fail).
fn async_stream<T, F, Fut>(produce: F) -> impl futures::Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_follow_marathon() {
        let labels = BTreeMap::from([("tier".to_string(), "web".to_string())]);
        assert!(label_matches(&labels, "tier"));
        assert!(label_matches(&labels, "tier==web"));
        assert!(!label_matches(&labels, "tier!=web"));
        assert!(!label_matches(&labels, "owner"));
    }

    #[test]
    fn type_errors_name_marathon_paths() {
        let r = parse_spec(&Bytes::from_static(
            br#"{"id": "x", "portDefinitions": [{"port": "a"}]}"#,
        ))
        .unwrap_err();
        assert_eq!(r.status(), 422);
        // Integers as Play reads them: a fraction or too large is not an int, below 0 too small.
        for (body, key) in [
            (
                &br#"{"healthChecks": [{"intervalSeconds": 1.5}]}"#[..],
                "error.expected.int",
            ),
            (
                br#"{"healthChecks": [{"maxConsecutiveFailures": 1e20}]}"#,
                "error.expected.int",
            ),
            (
                br#"{"healthChecks": [{"timeoutSeconds": -1}]}"#,
                "error.min",
            ),
        ] {
            let r = parse_spec(&Bytes::from_static(body)).unwrap_err();
            assert_eq!(r.status(), 422);
            let body = futures::executor::block_on(axum::body::to_bytes(r.into_body(), 1 << 16));
            let v: Value = serde_json::from_slice(&body.unwrap()).unwrap();
            assert_eq!(v["details"][0]["errors"][0], key, "{v}");
        }
        let r = parse_spec(&Bytes::from_static(b"{nope")).unwrap_err();
        assert_eq!(r.status(), 400);
        let r = parse_spec(&Bytes::from_static(b"")).unwrap_err();
        assert_eq!(r.status(), 400);
    }

    #[test]
    fn query_strings_decode() {
        let q = Query::parse(Some("embed=apps.tasks&embed=apps.counts&label=a%3D%3Db"));
        assert_eq!(
            q.all("embed").collect::<Vec<_>>(),
            vec!["apps.tasks", "apps.counts"]
        );
        assert_eq!(q.get("label"), Some("a==b"));
    }
}
