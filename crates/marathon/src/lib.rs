//! Marathon (`dcos-marathon.service`): long-running services as a framework of the Mesos
//! master, with Marathon 1.6's REST API so existing app definitions and clients work.
//!
//! Ports: 8080 (REST), 8443 (REST over TLS, see the crate README), 15101 (the scheduler
//! process's own health and metrics, where DC/OS runs Marathon's libprocess).
//!
//! - [`api`]: wire types; [`validate`]: from a client's JSON to a valid app.
//! - [`state`]: apps, instances, deployments and the rolling-change planner; [`offer`]:
//!   matching apps to offers. Neither does I/O.
//! - [`persist`]: state in the `store`; [`engine`]: the scheduler loop and app operations;
//!   [`health`]: health checks; [`http`]: the REST API.
//! - [`leader`]: the election among the masters' Marathons, and the followers' proxy.
#![warn(missing_docs)]

pub mod api;
pub mod engine;
pub mod health;
pub mod http;
pub mod leader;
pub mod offer;
pub mod persist;
pub mod state;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use engine::Marathon;

/// Marathon's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// REST API address (the node's IP, port 8080).
    pub listen: SocketAddr,
    /// The REST API over TLS (port 8443), if served.
    pub https: Option<SocketAddr>,
    /// The process health/metrics address (port 15101), if served.
    pub libprocess: Option<SocketAddr>,
    /// The Mesos masters.
    pub masters: Vec<SocketAddr>,
    /// Where Marathon keeps its TLS certificate.
    pub work_dir: PathBuf,
    /// Where Marathon keeps its state and holds its leader election: a file of its own (one
    /// master) or the masters' ZooKeeper (`/marathon`).
    pub store: dcos_store::Location,
    /// The framework name (`marathon`).
    pub framework_name: String,
    /// The cluster CA that issues the TLS certificate, if the cluster has one.
    pub ca_dir: Option<PathBuf>,
    /// Its service account's secret, when it must authenticate to the master (strict).
    pub credentials: Option<PathBuf>,
    /// Strict security: the API asks a token of the IAM at this address.
    pub verify_tokens: Option<SocketAddr>,
}

/// Errors starting or running Marathon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Its service account's secret cannot be read.
    #[error("Marathon's credentials: {0}")]
    Credentials(String),
    /// A port could not be bound.
    #[error("failed to bind Marathon's {what} on {addr}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate could not be made or read.
    #[error(transparent)]
    Tls(#[from] dcos_tls::Error),
    /// The state could not be opened.
    #[error("cannot open Marathon's state at {store}")]
    Store {
        /// The store.
        store: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The candidacy ended; Marathon stops (and is started again) as on losing leadership.
    #[error(transparent)]
    Lost(#[from] leader::Lost),
}

/// Binds the configured ports and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let http = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            what: "REST API",
            addr: config.listen,
            source,
        })?;
    let libprocess = match config.libprocess {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind {
                    what: "process endpoint",
                    addr,
                    source,
                })?,
        ),
        None => None,
    };
    let https = match config.https {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind {
                    what: "REST API over TLS",
                    addr,
                    source,
                })?,
        ),
        None => None,
    };
    serve_on(
        Listeners {
            http,
            https,
            libprocess,
        },
        config,
        shutdown,
    )
    .await
}

/// Already-bound sockets for [`serve_on`].
pub struct Listeners {
    /// The REST API.
    pub http: TcpListener,
    /// The REST API over TLS.
    pub https: Option<TcpListener>,
    /// Process health and metrics.
    pub libprocess: Option<TcpListener>,
}

/// Serves on already-bound listeners until `shutdown` is cancelled.
///
/// Marathon joins the leader election and serves at once: as a follower it proxies to the
/// leader; once elected it loads the state, registers with Mesos and answers itself.
pub async fn serve_on(
    listeners: Listeners,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let Listeners {
        http,
        https,
        libprocess,
    } = listeners;
    let addr = http.local_addr().unwrap_or(config.listen);
    let store_name = config.store.to_string();
    let store_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Store {
        store: store_name.clone(),
        source,
    };
    fs_create(&config.work_dir).map_err(|e| store_err(Box::new(e)))?;
    // The certificate first: a TLS problem is reported as one, before any state is opened.
    let tls_acceptor = match &https {
        Some(_) => Some(dcos_tls::acceptor(
            &config.work_dir,
            "marathon",
            &[addr.ip()],
            &["marathon.mesos", "localhost"],
            config.ca_dir.as_deref(),
        )?),
        None => None,
    };
    let store = config
        .store
        .open()
        .await
        .map_err(|e| store_err(Box::new(e)))?;
    // The participant id Curator records: `host:port`.
    let me = addr.to_string();
    let election = leader::join(store.clone(), me.clone())
        .await
        .map_err(|e| store_err(Box::new(e)))?;
    let role = leader::SharedRole::default();
    // Losing the candidacy stops everything; so does `shutdown`.
    let stop = shutdown.child_token();
    // Probes of Marathon's health stay open.
    let front = dcos_iam::client::require_tokens(
        leader::front_door(role.clone(), me.clone()),
        config.verify_tokens,
        &["/ping"],
    );

    tracing::info!(%addr, "listening for Marathon REST requests");
    let server = dcos_serve::serve(http, front.clone(), LIMITS, stop.clone());
    let process = async {
        let Some(listener) = libprocess else {
            return;
        };
        let paddr = listener.local_addr().ok();
        tracing::info!(addr = ?paddr, "listening for Marathon process health and metrics");
        let limits = dcos_serve::Limits::api().connections(64).body(64 * 1024);
        dcos_serve::serve(listener, process_router(role.clone()), limits, stop.clone()).await
    };
    let secure = async {
        let (Some(listener), Some(acceptor)) = (https, tls_acceptor) else {
            return;
        };
        tracing::info!(addr = ?listener.local_addr().ok(), "listening for Marathon REST requests over TLS");
        let listener = dcos_tls::TlsListener::new(listener, acceptor);
        dcos_serve::serve(listener, front.clone(), LIMITS, stop.clone()).await
    };
    let lead = async {
        let result = lead(&election, &role, store, &config, addr, &stop).await;
        // Streams (/v2/events) never end on their own: a stopping Marathon drops them.
        stop.cancel();
        result
    };
    let ((), (), (), led) = tokio::join!(server, secure, process, lead);
    led
}

/// What 8080 and 8443 allow each: the CLI, the UI, Admin Router's pooled connections and
/// event-stream subscribers are hundreds at most (an idle one makes way for a new client at
/// the limit); a group of many apps in one request is a few MiB.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api()
    .connections(512)
    .body(10 * 1024 * 1024);

/// Waits for this Marathon's turn, then loads the state and runs the scheduler and health
/// checks until `stop` or the loss of the candidacy.
async fn lead(
    election: &leader::Election,
    role: &leader::SharedRole,
    store: dcos_store::AnyStore,
    config: &Config,
    addr: SocketAddr,
    stop: &CancellationToken,
) -> Result<(), Error> {
    if !election
        .until_leading(stop, |l| leader::set(role, leader::Role::Following(l)))
        .await?
    {
        return Ok(());
    }
    tracing::info!("elected leading Marathon; loading the state");
    let settings = engine::Settings {
        masters: config.masters.clone(),
        hostname: addr.ip().to_string(),
        http_port: addr.port(),
        framework_name: config.framework_name.clone(),
        ha: matches!(config.store, dcos_store::Location::ZooKeeper { .. }),
        login: dcos_iam::client::ServiceLogin::from_optional_file(config.credentials.as_deref())
            .map_err(Error::Credentials)?,
    };
    let marathon = Marathon::load(persist::Persist::new(store), settings, stop.clone())
        .await
        .map_err(|e| Error::Store {
            store: config.store.to_string(),
            source: Box::new(e),
        })?;
    leader::set(
        role,
        leader::Role::Leading(http::router(marathon.clone()), marathon.clone()),
    );
    let scheduler = supervise("scheduler", stop, || marathon.clone().run(stop.clone()));
    let health = supervise("health check", stop, || {
        health::run(marathon.clone(), stop.clone())
    });
    let candidacy = async {
        let result = election.while_leading(stop).await;
        stop.cancel();
        result
    };
    let ((), (), candidacy) = tokio::join!(scheduler, health, candidacy);
    Ok(candidacy?)
}

/// How long a loop that panicked waits before it starts again.
const RESTART_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs one of the leading Marathon's loops in a task of its own, and starts it again if it
/// panics: per-app steps catch their own panics, so this is the net for the rest, keeping
/// the REST API and the other loop up instead of ending the process. Returns when the loop
/// returns (on `stop`).
async fn supervise<F, Fut>(what: &'static str, stop: &CancellationToken, start: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // The set owns the task: dropping this future aborts it.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tasks.spawn(start());
        match tasks.join_next().await {
            Some(Err(e)) if e.is_panic() => {
                tracing::error!(what, "Marathon's {what} loop panicked; starting it again");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RESTART_DELAY) => {}
                }
            }
            _ => return,
        }
    }
}

fn fs_create(dir: &std::path::Path) -> std::io::Result<()> {
    fs_err::create_dir_all(dir)
}

/// Port 15101: where DC/OS runs Marathon's libprocess, dcos-rs serves the scheduler
/// process's own health and metrics, in libprocess's `/metrics/snapshot` form.
fn process_router(role: leader::SharedRole) -> Router {
    Router::new()
        .route("/health", get(|| async { "OK" }))
        .route(
            "/metrics/snapshot",
            get(move || {
                let role = role.read().map(|r| r.clone()).unwrap_or_default();
                async move {
                    let leader::Role::Leading(_, m) = role else {
                        return Json(json!({"marathon/leader": 0.0}));
                    };
                    let s = m.lock().await;
                    let rss_kb = std::fs::read_to_string("/proc/self/statm")
                        .ok()
                        .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
                        .map(|pages| pages * 4)
                        .unwrap_or(0);
                    Json(json!({
                        "marathon/leader": 1.0,
                        "marathon/uptime_secs": m.started.elapsed().as_secs_f64(),
                        "marathon/subscribed": if m.connection().is_some() { 1.0 } else { 0.0 },
                        "marathon/apps": s.apps.len(),
                        "marathon/instances": s.instances.len(),
                        "marathon/deployments": s.deployments.len(),
                        "process/resident_memory_kb": rss_kb,
                    }))
                }
            }),
        )
}
