//! dcos-diagnostics (`dcos-diagnostics.service`, every node): the health of every unit on
//! every node, as DC/OS 1.11's `/system/health/v1` API answers it.
//!
//! Each node reports its own units: the node gives a function ([`Config::local`]) that
//! reads them from its supervisor and checks each process (a unit that is stopped or does
//! not accept on its ports is unhealthy with that reason, which systemd's state alone would
//! not show). Masters listen on TCP 1050 (as DC/OS 1.11 does; an added row of the port
//! contract) and pull every node on an interval ([`Pull`]): the other masters on their 1050,
//! the agents through their Admin Router (61001), which serves the agent's socket. Their
//! aggregate answers `/units`, `/nodes`, the drill-downs and `/report`; `?cache=0` pulls
//! first. Masters also make diagnostic bundles ([`bundle`]).
//!
//! Unknown units and nodes are 500 with a plain-text message, as dcos-diagnostics answers
//! them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub mod bundle;
pub mod model;
pub mod pull;

pub use model::{NodeHealth, Unit};

/// The masters' port (an added row of the port contract: DC/OS 1.11 binds it, its ports page
/// does not list it).
pub const MASTER_PORT: u16 = 1050;
/// The version this service reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a node reports of itself, each time it is asked.
#[derive(Clone, Debug, Default)]
pub struct Local {
    /// Its units.
    pub units: Vec<Unit>,
    /// Its Mesos id, when known.
    pub mesos_id: String,
}

/// The node's reporter: called on a blocking thread (it may read files and probe ports).
pub type Reporter = Arc<dyn Fn() -> Local + Send + Sync>;

/// Where the API listens.
#[derive(Clone, Debug)]
pub enum Listen {
    /// A TCP address (masters, 1050).
    Tcp(SocketAddr),
    /// A unix socket (agents, behind their Admin Router).
    Unix(PathBuf),
}

/// The node this service runs on.
#[derive(Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: Listen,
    /// The node's IP.
    pub ip: IpAddr,
    /// `master`, `agent` or `agent_public`.
    pub role: String,
    /// The DC/OS version the node runs.
    pub dcos_version: String,
    /// Reads the node's units.
    pub local: Reporter,
    /// Where the node's unit logs are (`<unit>.log`), served for bundles.
    pub logs_dir: PathBuf,
    /// Masters: how they pull every node and make bundles.
    pub pull: Option<pull::Pull>,
    /// A socket served too (a master that is also an agent: its agent router's path).
    pub also_socket: Option<PathBuf>,
    /// Strict security: the IAM that checks the token every request must carry (Admin
    /// Router passes the user's; the masters send their service account's).
    pub verify_tokens: Option<SocketAddr>,
}

/// Why the service cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener cannot be bound.
    #[error("cannot listen on {0}")]
    Bind(String, #[source] std::io::Error),
    /// The bundle directory cannot be made.
    #[error("cannot prepare the bundle directory {0}")]
    Bundles(PathBuf, #[source] std::io::Error),
}

/// Limits: probes from Admin Router, the other masters and operators.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api().connections(64).body(64 * 1024);

/// The longest unit log tail served (`/logs/units/{unit}`).
pub const MAX_LOG: u64 = 4 * 1024 * 1024;

struct Service {
    config: Config,
    puller: Option<pull::Puller>,
    bundles: Option<bundle::Bundles>,
}

type Shared = Arc<Service>;

impl Service {
    /// This node's own report.
    async fn local(&self) -> NodeHealth {
        let reporter = self.config.local.clone();
        let local = tokio::task::spawn_blocking(move || reporter())
            .await
            .unwrap_or_default();
        NodeHealth {
            units: local.units,
            hostname: self.config.ip.to_string(),
            ip: self.config.ip.to_string(),
            dcos_version: self.config.dcos_version.clone(),
            node_role: self.config.role.clone(),
            mesos_id: local.mesos_id,
            dcos_diagnostics_version: VERSION.to_string(),
        }
    }
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let puller = config.pull.clone().map(|p| pull::Puller::new(p, config.ip));
    let bundles = match &config.pull {
        Some(p) => Some(
            bundle::Bundles::open(p.bundles_dir.clone())
                .map_err(|e| Error::Bundles(p.bundles_dir.clone(), e))?,
        ),
        None => None,
    };
    let service = Arc::new(Service {
        config: config.clone(),
        puller,
        bundles,
    });
    if let Some(puller) = &service.puller {
        let service = service.clone();
        let stop = shutdown.clone();
        let puller = puller.clone();
        tokio::spawn(async move {
            let me = service.clone();
            puller
                .run(
                    move || {
                        let me = me.clone();
                        async move { me.local().await }
                    },
                    stop,
                )
                .await
        });
    }
    let app = router(service);
    let mut listens = vec![config.listen.clone()];
    listens.extend(config.also_socket.clone().map(Listen::Unix));
    let mut served = Vec::new();
    for listen in listens {
        match listen {
            Listen::Tcp(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| Error::Bind(addr.to_string(), e))?;
                tracing::info!(%addr, "listening for dcos-diagnostics requests");
                // Over TCP the caller must log in when security is strict.
                let app = dcos_iam::client::require_tokens(app.clone(), config.verify_tokens, &[]);
                served.push(tokio::spawn(dcos_serve::serve(
                    listener,
                    app,
                    LIMITS,
                    shutdown.clone(),
                )));
            }
            Listen::Unix(path) => {
                // A socket left by a killed predecessor would make bind fail.
                let _ = std::fs::remove_file(&path);
                let listener = tokio::net::UnixListener::bind(&path)
                    .map_err(|e| Error::Bind(path.display().to_string(), e))?;
                tracing::info!(socket = %path.display(), "listening for dcos-diagnostics requests");
                let app = app.clone();
                let shutdown = shutdown.clone();
                served.push(tokio::spawn(async move {
                    dcos_serve::serve(listener, app, LIMITS, shutdown).await;
                    let _ = std::fs::remove_file(&path);
                }));
            }
        }
    }
    for task in served {
        let _ = task.await;
    }
    Ok(())
}

fn router(service: Shared) -> Router {
    Router::new()
        .route("/system/health/v1", get(own))
        .route("/system/health/v1/units", get(units))
        .route("/system/health/v1/units/{unit}", get(unit))
        .route("/system/health/v1/units/{unit}/nodes", get(unit_nodes))
        .route(
            "/system/health/v1/units/{unit}/nodes/{ip}",
            get(unit_on_node),
        )
        .route("/system/health/v1/nodes", get(nodes))
        .route("/system/health/v1/nodes/{ip}", get(node))
        .route("/system/health/v1/nodes/{ip}/units", get(node_units))
        .route("/system/health/v1/nodes/{ip}/units/{unit}", get(node_unit))
        .route("/system/health/v1/report", get(report))
        .route("/system/health/v1/report/download", get(report_download))
        .route("/system/health/v1/logs", get(log_list))
        .route("/system/health/v1/selftest/info", get(selftest))
        .route("/system/health/v1/logs/units/{unit}", get(unit_log))
        .route(
            "/system/health/v1/report/diagnostics/create",
            post(bundle::create),
        )
        .route(
            "/system/health/v1/report/diagnostics/cancel",
            post(bundle::cancel),
        )
        .route(
            "/system/health/v1/report/diagnostics/status",
            get(bundle::status),
        )
        .route(
            "/system/health/v1/report/diagnostics/status/all",
            get(bundle::status_all),
        )
        .route(
            "/system/health/v1/report/diagnostics/list",
            get(bundle::list),
        )
        .route(
            "/system/health/v1/report/diagnostics/list/all",
            get(bundle::list_all),
        )
        .route(
            "/system/health/v1/report/diagnostics/serve/{file}",
            get(bundle::serve_file),
        )
        .route(
            "/system/health/v1/report/diagnostics/delete/{file}",
            post(bundle::delete),
        )
        .with_state(service)
}

/// `?cache=0`: pull before answering.
#[derive(serde::Deserialize, Default)]
struct CacheQuery {
    cache: Option<String>,
}

/// dcos-diagnostics' answer to a lookup that found nothing: 500, plain text.
fn not_found(e: model::NotFound) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
}

/// The aggregate, pulled first when asked (`?cache=0`) or when never pulled; agents, which
/// pull nothing, answer with themselves alone.
async fn cluster(service: &Service, query: &CacheQuery) -> model::Cluster {
    match &service.puller {
        Some(puller) => {
            let fresh = query.cache.as_deref() == Some("0");
            puller.cluster(fresh, || service.local()).await
        }
        None => {
            let me = service.local().await;
            let mut c = model::Cluster::default();
            c.nodes.insert(me.ip.clone(), me);
            c
        }
    }
}

async fn own(State(s): State<Shared>) -> Json<NodeHealth> {
    Json(s.local().await)
}

async fn units(State(s): State<Shared>, Query(q): Query<CacheQuery>) -> Json<Value> {
    Json(cluster(&s, &q).await.units())
}

fn answer(found: Result<Value, model::NotFound>) -> Response {
    match found {
        Ok(v) => Json(v).into_response(),
        Err(e) => not_found(e),
    }
}

async fn unit(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<CacheQuery>,
) -> Response {
    answer(cluster(&s, &q).await.unit(&id))
}

async fn unit_nodes(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<CacheQuery>,
) -> Response {
    answer(cluster(&s, &q).await.unit_nodes_view(&id))
}

async fn unit_on_node(
    State(s): State<Shared>,
    Path((id, ip)): Path<(String, String)>,
    Query(q): Query<CacheQuery>,
) -> Response {
    answer(cluster(&s, &q).await.unit_on_node(&id, &ip))
}

async fn nodes(State(s): State<Shared>, Query(q): Query<CacheQuery>) -> Json<Value> {
    Json(cluster(&s, &q).await.nodes_view())
}

async fn node(
    State(s): State<Shared>,
    Path(ip): Path<String>,
    Query(q): Query<CacheQuery>,
) -> Response {
    answer(cluster(&s, &q).await.node(&ip))
}

async fn node_units(
    State(s): State<Shared>,
    Path(ip): Path<String>,
    Query(q): Query<CacheQuery>,
) -> Response {
    answer(cluster(&s, &q).await.node_units(&ip))
}

async fn node_unit(
    State(s): State<Shared>,
    Path((ip, id)): Path<(String, String)>,
    Query(q): Query<CacheQuery>,
) -> Response {
    answer(cluster(&s, &q).await.node_unit(&ip, &id))
}

async fn report(State(s): State<Shared>, Query(q): Query<CacheQuery>) -> Json<Value> {
    Json(cluster(&s, &q).await.report())
}

async fn report_download(State(s): State<Shared>, Query(q): Query<CacheQuery>) -> Response {
    let body = cluster(&s, &q).await.report().to_string();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=health-report.json",
            ),
        ],
        body,
    )
        .into_response()
}

/// Whether `id` is a unit name: letters, digits, `-`, `_`, `.`, `@`, no path.
pub fn valid_unit(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'@'))
}

/// `/selftest/info`: this service's own checks, each `{Success, ErrorMessage}`.
async fn selftest(State(s): State<Shared>) -> Json<Value> {
    let me = s.local().await;
    let check = |ok: bool, why: &str| serde_json::json!({"Success": ok, "ErrorMessage": if ok { "" } else { why }});
    let status_read = !me.units.is_empty()
        && !me
            .units
            .iter()
            .any(|u| u.output.contains("unit status cannot be read"));
    let mut checks = serde_json::json!({
        "UnitsStatusReadable": check(status_read, "the node's unit status cannot be read"),
        "LogsDirReadable": check(s.config.logs_dir.is_dir(), "the node's logs dir is missing"),
    });
    if let Some(b) = &s.bundles {
        checks["BundleDirWritable"] = check(b.writable(), "the bundle directory is not writable");
    }
    Json(checks)
}

/// `/logs`: the unit logs this node serves for bundles (its `<unit>.log` files; no probe of
/// the units is needed to list them).
async fn log_list(State(s): State<Shared>) -> Json<Value> {
    let mut names: Vec<String> = std::fs::read_dir(&s.config.logs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log")
                .filter(|unit| valid_unit(unit))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    let units: Vec<Value> = names
        .iter()
        .map(|u| serde_json::json!({"name": u, "url": format!("/system/health/v1/logs/units/{u}")}))
        .collect();
    Json(serde_json::json!({"units": units}))
}

/// `/logs/units/{unit}`: the tail of a unit's log on this node (at most [`MAX_LOG`]).
async fn unit_log(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    // The name is checked before it becomes a path; the unit is the node's if its log is.
    if !valid_unit(&id) {
        return not_found(model::NotFound::Unit(id));
    }
    let path = s.config.logs_dir.join(format!("{id}.log"));
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || tail(&path, MAX_LOG)).await {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => (
            StatusCode::NOT_FOUND,
            format!("Unit {id} has no log on this node\n"),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {shown}: {e}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// The last `limit` bytes of a file.
pub fn tail(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(limit)))?;
    let mut out = Vec::with_capacity(len.min(limit) as usize);
    file.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// How long a pull of one node may take.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(5);
