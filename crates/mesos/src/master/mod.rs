//! The Mesos master (`dcos-mesos-master.service`, port 5050).
//!
//! - `state`: the master as a state machine: frameworks, agents, tasks and offers, every
//!   transition between them, and what each transition sends.
//! - `delivery`: the state machine behind its lock, delivering what it sends to the streams.
//! - `allocator`: weighted DRF, run in batches every allocation interval.
//! - `views`: the JSON of the operator endpoints.
//! - `scheduler_api`, `agent_api`, `operator_api`, `endpoints`: the HTTP APIs, each a
//!   thin edge that parses a typed call, runs one transition and answers.
//! - this module: configuration, the leader election, the periodic loop and the routes.

mod agent_api;
mod allocator;
mod authn;
mod delivery;
mod endpoints;
mod operator_api;
pub mod registry;
mod scheduler_api;
mod state;
pub(crate) mod views;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dcos_store::{AnyStore, Candidate, Location, Standing};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::http::text;

use self::delivery::Core;
use self::state::Master;

/// Seconds between heartbeats on scheduler and agent streams.
pub const HEARTBEAT_SECS: f64 = 15.0;

/// The master's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen (the node's IP, port 5050).
    pub listen: SocketAddr,
    /// The cluster's name (`cluster` in state).
    pub cluster: String,
    /// Batched allocation interval.
    pub allocation_interval: Duration,
    /// How long an agent may be disconnected before it is unreachable.
    pub agent_ping_timeout: Duration,
    /// Role weights for DRF.
    pub weights: HashMap<String, f64>,
    /// Where the registry and the leader election live: a file of its own (one master) or
    /// the masters' ZooKeeper (`/mesos`).
    pub store: Location,
    /// How long agents recovered from the registry have to re-register before they are
    /// unreachable (Mesos' `agent_reregister_timeout`, 10 minutes).
    pub agent_reregister_timeout: Duration,
    /// Frameworks and agents authenticate (Mesos' `--authenticate_frameworks` and
    /// `--authenticate_agents`, strict security): their SUBSCRIBE must carry a token of the
    /// IAM at this address.
    pub authenticate: Option<SocketAddr>,
}

/// Mesos' default `agent_reregister_timeout`.
pub const AGENT_REREGISTER_TIMEOUT: Duration = Duration::from_secs(600);

/// Errors starting or running the master.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The port could not be bound.
    #[error("failed to bind the Mesos master on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The registry cannot be opened or read.
    #[error("cannot use the Mesos master's registry at {store}")]
    Registry {
        /// The store.
        store: String,
        /// The cause.
        #[source]
        source: registry::Error,
    },
    /// This master's candidacy ended (its store session closed or expired): as a Mesos master
    /// does, it stops, and its supervisor starts it again as a new contender.
    #[error("lost its place in the leader election at {store}; stopping")]
    LostLeadership {
        /// The store.
        store: String,
    },
}

/// Shared master state.
#[derive(Clone)]
pub struct Shared {
    core: Arc<Mutex<Core>>,
    config: Arc<Config>,
    registry: registry::Registry,
    leadership: Arc<watch::Sender<Leadership>>,
    /// Checks frameworks' and agents' tokens, when they must authenticate.
    verifier: Option<Arc<dcos_iam::client::Verifier>>,
}

/// Who leads, as this master knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leadership {
    /// This master leads (and has recovered the registry).
    pub leading: bool,
    /// The leader's address, if one is elected.
    pub leader: Option<SocketAddr>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves consistent-enough state to keep serving.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one transition of the master under its lock and delivers what it sends.
    fn apply<R>(&self, transition: impl FnOnce(&mut Master) -> R) -> R {
        self.lock().apply(transition)
    }

    fn flags(&self) -> Value {
        json!({
            "allocation_interval": format!("{}secs", self.config.allocation_interval.as_secs_f64()),
            "agent_ping_timeout": format!("{}secs", self.config.agent_ping_timeout.as_secs_f64()),
            "cluster": self.config.cluster,
            "port": self.config.listen.port().to_string(),
            "ip": self.config.listen.ip().to_string(),
            "authenticate_frameworks": self.config.authenticate.is_some().to_string(),
            "authenticate_agents": self.config.authenticate.is_some().to_string(),
        })
    }
}

/// Binds the configured address and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    serve_on(listener, config, shutdown).await
}

/// Serves on an already-bound listener until `shutdown` is cancelled.
///
/// The master enters the leader election at once and serves while it waits: until it leads,
/// the scheduler, agent and operator APIs and the state endpoints redirect (307) to the
/// leader, or answer 503 while none is elected, as a Mesos master does. Once elected it
/// recovers the registry and leads until it stops or loses its candidacy.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let addr = listener.local_addr().unwrap_or(config.listen);
    let mut config = config;
    config.listen = addr;
    let store = config.store.to_string();
    let registry_error = |source| Error::Registry {
        store: store.clone(),
        source,
    };
    let master = Master::new(
        addr.ip().to_string(),
        addr.port(),
        config.cluster.clone(),
        config.weights.clone(),
    );
    let registry = registry::Registry::open(&config.store)
        .await
        .map_err(registry_error)?;
    // The candidacy (the `json.info_` node) lasts as long as this process's store session.
    let candidate = registry
        .contend(&master.master_info())
        .await
        .map_err(registry_error)?;
    tracing::info!(contender = candidate.path(), %store, "entered the leader election");
    let authenticate = config.authenticate;
    let shared = Shared {
        verifier: config
            .authenticate
            .map(|iam| Arc::new(dcos_iam::client::Verifier::new(iam))),
        core: Arc::new(Mutex::new(Core::new(master))),
        config: Arc::new(config),
        registry,
        leadership: Arc::new(watch::channel(Leadership::default()).0),
    };
    // Losing the candidacy stops the server too.
    let stop = shutdown.child_token();
    let mut first_outcome = shared.leadership.subscribe();
    let elected = tokio::spawn({
        let (shared, stop) = (shared.clone(), stop.clone());
        async move {
            let result = elect(&shared, &candidate, &stop).await;
            stop.cancel();
            result
        }
    });
    // Serve once the first election read is in (milliseconds), so that a lone master's first
    // callers find it leading; a store that does not answer makes it serve as a standby.
    let _ = tokio::time::timeout(Duration::from_secs(5), first_outcome.changed()).await;
    tracing::info!(%addr, "listening for Mesos master requests");
    let ticker = periodic(shared.clone(), stop.clone());
    // Strict security: every endpoint but the health probes and the redirect asks a token;
    // SUBSCRIBE of frameworks and agents checks its own (with permissions).
    let app = dcos_iam::client::require_tokens(router(shared), authenticate, OPEN_IN_STRICT);
    let server = dcos_serve::serve(listener, app, LIMITS, stop);
    let ((), (), elected) = tokio::join!(server, ticker, elected);
    match elected {
        Ok(result) => result,
        Err(panicked) => std::panic::resume_unwind(panicked.into_panic()),
    }
}

/// What 5050 allows. Every agent and subscribed framework holds a connection for its event
/// stream (the benchmark runs 10,000 agents on one master), so connections are many; an
/// agent's re-SUBSCRIBE lists all its tasks and a scheduler's ACCEPT may launch thousands,
/// so bodies are large (5,000 tasks with their TaskInfos are ~10 MiB).
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api()
    .connections(65_536)
    .body(64 * 1024 * 1024)
    .header_timeout(Duration::from_secs(30));

/// Follows the election: publishes the leader, and recovers the registry and leads when this
/// master's turn comes. Returns when `stop` is cancelled, or fails when the candidacy is gone
/// (the only error [`Candidate::standing`] returns).
async fn elect(
    shared: &Shared,
    candidate: &Candidate<AnyStore>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    let store = shared.config.store.to_string();
    loop {
        let standing = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            standing = candidate.standing() => standing,
        };
        let Ok(Standing {
            leader,
            leading,
            mut changes,
        }) = standing
        else {
            return Err(Error::LostLeadership { store });
        };
        let leader_addr = leader
            .and_then(|(_, info)| serde_json::from_slice::<Value>(&info).ok())
            .and_then(|info| master_addr(&info));
        if leading && !shared.leadership.borrow().leading {
            recover(shared).await.map_err(|source| Error::Registry {
                store: store.clone(),
                source,
            })?;
        }
        shared.leadership.send_if_modified(|l| {
            let now = Leadership {
                leading,
                leader: leader_addr,
            };
            let changed = *l != now;
            if changed {
                tracing::info!(leading, leader = ?leader_addr, "the Mesos leader changed");
            }
            *l = now;
            changed
        });
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = changes.recv() => {}
        }
    }
}

/// A leader's `ip:port` from its `MasterInfo`.
fn master_addr(info: &Value) -> Option<SocketAddr> {
    let ip = info["address"]["ip"].as_str()?.parse().ok()?;
    let port = u16::try_from(info["address"]["port"].as_u64()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Loads the agents the registry admitted (minus the unreachable ones): they are expected to
/// re-register within the re-register timeout, counted from now.
async fn recover(shared: &Shared) -> Result<(), registry::Error> {
    let unreachable = shared.registry.unreachable().await?;
    let agents = shared.registry.agents().await?;
    let recovered = shared.apply(|m| {
        m.recover(agents, &unreachable, api::now_secs());
        m.recovered_agents().count()
    });
    tracing::info!(
        recovered,
        unreachable = unreachable.len(),
        "elected leader; recovered the registry"
    );
    Ok(())
}

/// Allocation, heartbeats, failover and agent timeouts.
async fn periodic(shared: Shared, shutdown: CancellationToken) {
    let mut alloc = tokio::time::interval(shared.config.allocation_interval);
    alloc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeat = tokio::time::interval(Duration::from_secs_f64(HEARTBEAT_SECS));
    let mut elected: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                // Graceful shutdown waits for every open response; the event streams never
                // end on their own, so a stopping master ends them.
                shared.lock().close_streams();
                return;
            }
            _ = alloc.tick() => {
                // A standby keeps no agents or frameworks: they all talk to the leader.
                if !shared.leadership.borrow().leading {
                    continue;
                }
                let elected = *elected.get_or_insert_with(Instant::now);
                let config = &shared.config;
                let lost = shared.apply(|m| {
                    m.expire_frameworks();
                    let mut lost = m.mark_unreachable(config.agent_ping_timeout);
                    if elected.elapsed() >= config.agent_reregister_timeout {
                        lost.extend(m.expire_recovered_agents());
                    }
                    m.allocate();
                    lost
                });
                if !lost.is_empty() {
                    let registry = shared.registry.clone();
                    tokio::spawn(async move {
                        for id in lost {
                            if let Err(e) = registry.mark_unreachable(&id, api::now_secs()).await {
                                tracing::error!(agent_id = %id, error = %e, "cannot record an unreachable agent");
                            }
                        }
                    });
                }
            }
            _ = heartbeat.tick() => shared.lock().heartbeat(),
        }
    }
}

/// What strict security leaves open: probes, the leader's whereabouts, and the two APIs
/// whose SUBSCRIBE checks its own token.
const OPEN_IN_STRICT: &[&str] = &[
    "/health",
    "/master/health",
    "/version",
    "/redirect",
    "/master/redirect",
    "/api/v1/scheduler",
    crate::protocol::AGENT_API_PATH,
];

/// The HTTP routes, testable without a socket.
pub fn router(shared: Shared) -> Router {
    // What only the leader answers; a standby redirects these to it.
    let leader_only = Router::new()
        .route("/api/v1/scheduler", post(scheduler_api::scheduler))
        .route(crate::protocol::AGENT_API_PATH, post(agent_api::agent_api))
        .route("/api/v1", post(operator_api::operator))
        .route("/state", get(endpoints::state))
        .route("/state.json", get(endpoints::state))
        .route("/master/state", get(endpoints::state))
        .route("/master/state.json", get(endpoints::state))
        .route("/state-summary", get(endpoints::state_summary))
        .route("/master/state-summary", get(endpoints::state_summary))
        .route("/master/slaves", get(endpoints::slaves))
        .route("/slaves", get(endpoints::slaves))
        .route("/master/frameworks", get(endpoints::frameworks))
        .route("/frameworks", get(endpoints::frameworks))
        .route("/master/tasks", get(endpoints::tasks))
        .route("/tasks", get(endpoints::tasks))
        .route("/master/teardown", post(endpoints::teardown))
        .route("/teardown", post(endpoints::teardown))
        // The web UI reads the leader's API from its own origin: a standby sends the
        // browser to the leader's page, as Mesos does.
        .route("/", get(web_ui))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_leader,
        ));
    Router::new()
        .merge(leader_only)
        .route("/assets/{*file}", get(web_ui))
        .route("/master/redirect", get(redirect))
        .route("/redirect", get(redirect))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/master/health", get(|| async { StatusCode::OK }))
        .route("/version", get(|| async { Json(views::version()) }))
        .route("/metrics/snapshot", get(endpoints::metrics))
        .route(
            "/flags",
            get(|State(s): State<Shared>| async move { Json(json!({"flags": s.flags()})) }),
        )
        .with_state(shared)
}

/// Passes a request on if this master leads; otherwise redirects it to the leader with its
/// path and query (`//ip:port/path`), or answers 503 while no leader is elected.
async fn require_leader(
    State(shared): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let leadership = *shared.leadership.borrow();
    if leadership.leading {
        return next.run(request).await;
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    to_leader(leadership, &path)
}

/// 307 to `//leader{path}`, or 503 "No leader elected".
fn to_leader(leadership: Leadership, path: &str) -> Response {
    let Some(leader) = leadership.leader else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected");
    };
    let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("//{leader}{path}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The master's web UI (leader, agents, frameworks, tasks, sandboxes): the leader's page
/// (a standby redirects to it), its files from any master.
async fn web_ui(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let if_none_match = headers.get(header::IF_NONE_MATCH);
    match dcos_ui::response(dcos_ui::View::Mesos, uri.path(), if_none_match) {
        Some(resp) => resp.map(axum::body::Body::from),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/redirect`: to the leading master's base URL (itself if it leads).
async fn redirect(State(shared): State<Shared>) -> Response {
    let mut leadership = *shared.leadership.borrow();
    if leadership.leading {
        leadership.leader = Some(shared.config.listen);
    }
    to_leader(leadership, "")
}
