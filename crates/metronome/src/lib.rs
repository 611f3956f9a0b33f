//! Metronome (`dcos-metronome.service`): DC/OS Jobs, one-off and cron-scheduled batch jobs as
//! a framework of the Mesos master, with Metronome 0.4.5's REST API (the DC/OS 1.11 release).
//!
//! Ports: 9090 (REST), 9443 (REST over TLS with the cluster CA's certificate), 15201 (the
//! scheduler process's own health and metrics, where DC/OS runs Metronome's libprocess).
//! Admin Router reaches it at `/service/metronome/` through the framework's `webui_url`.
//!
//! - [`api`]: wire types; [`validate`]: from a client's JSON to a valid job (422 bodies).
//! - [`schedule`]: cron expressions in time zones, missed fire times; [`state`]: jobs, runs
//!   and histories and how runs move. Neither does I/O.
//! - [`persist`]: the state in the `store`; [`engine`]: the operations and the one write
//!   path; [`framework`]: the Mesos framework loop; [`firing`]: the schedule loop;
//!   [`clock`]: the time both read; [`http`]: the REST API; [`metrics`].
//! - [`leader`]: the election among the masters' Metronomes and the followers' proxy.
#![warn(missing_docs)]

pub mod api;
pub mod clock;
pub mod engine;
pub mod firing;
pub mod framework;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod persist;
pub mod schedule;
pub mod state;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use clock::Clock;
pub use engine::Metronome;

/// The contract's ports.
pub mod ports {
    /// REST.
    pub const HTTP: u16 = 9090;
    /// REST over TLS.
    pub const HTTPS: u16 = 9443;
    /// Process health and metrics.
    pub const LIBPROCESS: u16 = 15201;
}

/// Metronome's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// REST API address (the node's IP, port 9090).
    pub listen: SocketAddr,
    /// The REST API over TLS (port 9443), if served.
    pub https: Option<SocketAddr>,
    /// Process health and metrics (port 15201), if served.
    pub libprocess: Option<SocketAddr>,
    /// The Mesos masters.
    pub masters: Vec<SocketAddr>,
    /// Where Metronome keeps its TLS certificate.
    pub work_dir: PathBuf,
    /// Where it keeps its state and holds its election: a file (one master) or the masters'
    /// ZooKeeper.
    pub store: dcos_store::Location,
    /// The framework name (`metronome`).
    pub framework_name: String,
    /// The cluster CA that issues the TLS certificate, if the cluster has one.
    pub ca_dir: Option<PathBuf>,
    /// Its service account's secret, when it must authenticate to the master (strict).
    pub credentials: Option<PathBuf>,
    /// Strict security: the API asks a token of the IAM at this address.
    pub verify_tokens: Option<SocketAddr>,
}

/// Errors starting or running Metronome.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Its service account's secret cannot be read.
    #[error("Metronome's credentials: {0}")]
    Credentials(String),
    /// A port could not be bound.
    #[error("failed to bind Metronome's {what} on {addr}")]
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
    /// The state could not be opened or loaded.
    #[error("cannot open Metronome's state at {store}")]
    Store {
        /// The store.
        store: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The candidacy ended; Metronome stops (and is started again), as on losing leadership.
    #[error(transparent)]
    Lost(#[from] leader::Lost),
}

/// What 9090 and 9443 allow: the CLI, the UI polling every 2 s, Admin Router's pooled
/// connections; a job spec is a few KiB.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api().connections(512).body(1024 * 1024);

/// Already-bound sockets for [`serve_on`].
pub struct Listeners {
    /// The REST API.
    pub http: TcpListener,
    /// The REST API over TLS.
    pub https: Option<TcpListener>,
    /// Process health and metrics.
    pub libprocess: Option<TcpListener>,
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

/// Binds the configured ports and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let http = bind(config.listen, "REST API").await?;
    let https = match config.https {
        Some(a) => Some(bind(a, "REST API over TLS").await?),
        None => None,
    };
    let libprocess = match config.libprocess {
        Some(a) => Some(bind(a, "process endpoint").await?),
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

/// Serves on already-bound listeners with the configured store and the system clock.
pub async fn serve_on(
    listeners: Listeners,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let store = config.store.open().await.map_err(|e| Error::Store {
        store: config.store.to_string(),
        source: Box::new(e),
    })?;
    serve_with(listeners, config, store, Clock::system(), shutdown).await
}

/// Serves on already-bound listeners with an open store session and `clock` until
/// `shutdown` is cancelled (tests pass a shared embedded store and a manual clock).
///
/// Metronome joins the election and serves at once: as a follower it proxies to the leader;
/// once elected it loads the state, subscribes to Mesos, fires schedules, answers itself.
pub async fn serve_with(
    listeners: Listeners,
    config: Config,
    store: dcos_store::AnyStore,
    clock: Clock,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let Listeners {
        http,
        https,
        libprocess,
    } = listeners;
    let addr = http.local_addr().unwrap_or(config.listen);
    let store_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Store {
        store: config.store.to_string(),
        source,
    };
    fs_err::create_dir_all(&config.work_dir).map_err(|e| store_err(Box::new(e)))?;
    let tls_acceptor = match &https {
        Some(_) => Some(dcos_tls::acceptor(
            &config.work_dir,
            "metronome",
            &[addr.ip()],
            &["metronome.mesos", "localhost"],
            config.ca_dir.as_deref(),
        )?),
        None => None,
    };
    let me = addr.to_string();
    let election = leader::join(store.clone(), me.clone())
        .await
        .map_err(|e| store_err(Box::new(e)))?;
    let role = leader::SharedRole::default();
    let stop = shutdown.child_token();
    let local = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route("/v1/metrics", get(|| async { Json(json!({"version": "3.0.0", "counters": {}, "gauges": {}, "histograms": {}, "meters": {}, "timers": {}})) }));
    // Probes of Metronome's health stay open.
    let front = dcos_iam::client::require_tokens(
        leader::front_door(role.clone(), me.clone(), local),
        config.verify_tokens,
        &["/ping"],
    );

    tracing::info!(%addr, "listening for Metronome REST requests");
    let server = dcos_serve::serve(http, front.clone(), LIMITS, stop.clone());
    let secure = async {
        let (Some(listener), Some(acceptor)) = (https, tls_acceptor) else {
            return;
        };
        tracing::info!(addr = ?listener.local_addr().ok(), "listening for Metronome REST requests over TLS");
        let listener = dcos_tls::TlsListener::new(listener, acceptor);
        dcos_serve::serve(listener, front.clone(), LIMITS, stop.clone()).await
    };
    let shared: std::sync::Arc<std::sync::Mutex<Option<Metronome>>> = Default::default();
    let process = async {
        let Some(listener) = libprocess else { return };
        tracing::info!(addr = ?listener.local_addr().ok(), "listening for Metronome process health and metrics");
        let limits = dcos_serve::Limits::api().connections(64).body(64 * 1024);
        dcos_serve::serve(
            listener,
            process_router(shared.clone()),
            limits,
            stop.clone(),
        )
        .await
    };
    let lead = async {
        let result = lead(
            &election, &role, store, &config, addr, clock, &shared, &stop,
        )
        .await;
        stop.cancel();
        result
    };
    let ((), (), (), led) = tokio::join!(server, secure, process, lead);
    led
}

/// Waits for this Metronome's turn, then loads the state and runs the framework and the
/// schedules until `stop` or the loss of the candidacy.
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces serve_with already holds"
)]
async fn lead(
    election: &leader::Election,
    role: &leader::SharedRole,
    store: dcos_store::AnyStore,
    config: &Config,
    addr: SocketAddr,
    clock: Clock,
    shared: &std::sync::Mutex<Option<Metronome>>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    if !election
        .until_leading(stop, |l| leader::set(role, leader::Role::Following(l)))
        .await?
    {
        return Ok(());
    }
    tracing::info!("elected leading Metronome; loading the state");
    let settings = engine::Settings {
        masters: config.masters.clone(),
        hostname: addr.ip().to_string(),
        webui_url: format!("http://{addr}"),
        framework_name: config.framework_name.clone(),
        history_count: api::defaults::HISTORY_COUNT,
        login: dcos_iam::client::ServiceLogin::from_optional_file(config.credentials.as_deref())
            .map_err(Error::Credentials)?,
    };
    let metronome = Metronome::load(store, settings, clock)
        .await
        .map_err(|e| Error::Store {
            store: config.store.to_string(),
            source: Box::new(e),
        })?;
    *shared.lock().unwrap_or_else(|p| p.into_inner()) = Some(metronome.clone());
    leader::set(
        role,
        leader::Role::Leading(http::router(metronome.clone()), ()),
    );
    let framework = supervise("framework", stop, || {
        metronome.clone().run_framework(stop.clone())
    });
    let schedules = supervise("schedule", stop, || {
        metronome.clone().run_schedules(stop.clone())
    });
    let candidacy = async {
        let r = election.while_leading(stop).await;
        stop.cancel();
        r
    };
    let ((), (), candidacy) = tokio::join!(framework, schedules, candidacy);
    Ok(candidacy?)
}

/// Runs one of the leader's loops in a task of its own and starts it again if it panics,
/// so a bug costs a restart of that loop, not the process. Returns when the loop returns.
async fn supervise<F, Fut>(what: &'static str, stop: &CancellationToken, start: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tasks.spawn(start());
        match tasks.join_next().await {
            Some(Err(e)) if e.is_panic() => {
                tracing::error!(what, "Metronome's {what} loop panicked; starting it again");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
            _ => return,
        }
    }
}

/// Port 15201: the process's own health and metrics, in libprocess's `/metrics/snapshot` form.
fn process_router(shared: std::sync::Arc<std::sync::Mutex<Option<Metronome>>>) -> Router {
    Router::new()
        .route("/health", get(|| async { "OK" }))
        .route(
            "/metrics/snapshot",
            get(move || {
                let m = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
                async move {
                    let Some(m) = m else {
                        return Json(json!({"metronome/leader": 0.0}));
                    };
                    let (jobs, runs) = {
                        let s = m.lock().await;
                        (s.jobs.len(), s.runs.len())
                    };
                    Json(json!({
                        "metronome/leader": 1.0,
                        "metronome/uptime_secs": m.uptime().as_secs_f64(),
                        "metronome/subscribed": if m.connection().is_some() { 1.0 } else { 0.0 },
                        "metronome/jobs": jobs,
                        "metronome/active_runs": runs,
                        "metronome/schedule_missed": m.metrics().missed_count(),
                    }))
                }
            }),
        )
}
