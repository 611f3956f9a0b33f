//! The Mesos master (`dcos-mesos-master.service`, port 5050).
//!
//! - [`state`]: frameworks, agents, tasks and offers, and every transition between them.
//! - [`allocator`]: weighted DRF, run in batches every allocation interval.
//! - [`views`]: the JSON of the operator endpoints.
//! - this module: the HTTP API (scheduler, agent, operator) and the periodic loop.

pub mod allocator;
pub mod registry;
pub mod state;
pub mod views;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, RawForm, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dcos_store::{AnyStore, Candidate, Location, Standing};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::{self, FrameworkInfo, Id};
use crate::http::{check_json, stream_response, text};
use crate::protocol::{AgentCall, AgentEvent};
use crate::recordio;
use crate::resources::Resources;

use self::state::{CallError, Master};

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
    master: Arc<Mutex<Master>>,
    config: Arc<Config>,
    registry: registry::Registry,
    leadership: Arc<watch::Sender<Leadership>>,
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
    fn lock(&self) -> MutexGuard<'_, Master> {
        // A panic while holding the lock leaves consistent-enough state to keep serving.
        self.master.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn flags(&self) -> Value {
        json!({
            "allocation_interval": format!("{}secs", self.config.allocation_interval.as_secs_f64()),
            "agent_ping_timeout": format!("{}secs", self.config.agent_ping_timeout.as_secs_f64()),
            "cluster": self.config.cluster,
            "port": self.config.listen.port().to_string(),
            "ip": self.config.listen.ip().to_string(),
            "authenticate_frameworks": "false",
            "authenticate_agents": "false",
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
    let shared = Shared {
        master: Arc::new(Mutex::new(master)),
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
    let server = dcos_serve::serve(listener, router(shared), LIMITS, stop);
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
    let mut m = shared.lock();
    for (id, info) in agents {
        if !unreachable.contains(&id) && !m.agents.contains_key(&id) {
            m.recovered_agents.insert(id, info);
        }
    }
    m.elected_time = Some(api::now_secs());
    tracing::info!(
        recovered = m.recovered_agents.len(),
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
                let mut m = shared.lock();
                m.expire_frameworks();
                let mut lost = m.mark_unreachable(shared.config.agent_ping_timeout);
                if elected.elapsed() >= shared.config.agent_reregister_timeout {
                    lost.extend(m.recovered_agents.drain().map(|(id, _)| id));
                }
                let started = Instant::now();
                let decisions = allocator::allocate(&m, started);
                m.make_offers(decisions);
                m.allocation_runs.record(started.elapsed().as_secs_f64() * 1000.0);
                drop(m);
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
            _ = heartbeat.tick() => {
                let mut m = shared.lock();
                let beat = json!({"type": "HEARTBEAT"});
                for fw in m.frameworks.values_mut() {
                    if let Some(s) = &fw.stream {
                        let _ = s.tx.try_send(recordio::encode(beat.to_string().as_bytes()));
                    }
                }
                for agent in m.agents.values() {
                    if let Some(tx) = &agent.tx {
                        let _ = tx.try_send(AgentEvent::Heartbeat);
                    }
                }
                m.publish(beat);
            }
        }
    }
}

/// The HTTP routes, testable without a socket.
pub fn router(shared: Shared) -> Router {
    // What only the leader answers; a standby redirects these to it.
    let leader_only = Router::new()
        .route("/api/v1/scheduler", post(scheduler))
        .route(crate::protocol::AGENT_API_PATH, post(agent_api))
        .route("/api/v1", post(operator))
        .route("/state", get(state_endpoint))
        .route("/state.json", get(state_endpoint))
        .route("/master/state", get(state_endpoint))
        .route("/master/state.json", get(state_endpoint))
        .route("/state-summary", get(state_summary))
        .route("/master/state-summary", get(state_summary))
        .route("/master/slaves", get(slaves))
        .route("/slaves", get(slaves))
        .route("/master/frameworks", get(frameworks))
        .route("/frameworks", get(frameworks))
        .route("/master/tasks", get(tasks))
        .route("/tasks", get(tasks))
        .route("/master/teardown", post(teardown_endpoint))
        .route("/teardown", post(teardown_endpoint))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_leader,
        ));
    Router::new()
        .merge(leader_only)
        .route("/master/redirect", get(redirect))
        .route("/redirect", get(redirect))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/master/health", get(|| async { StatusCode::OK }))
        .route("/version", get(|| async { Json(views::version()) }))
        .route("/metrics/snapshot", get(metrics))
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

impl IntoResponse for CallError {
    fn into_response(self) -> Response {
        match self {
            CallError::BadRequest(m) => text(StatusCode::BAD_REQUEST, m),
            CallError::Forbidden(m) => text(StatusCode::FORBIDDEN, m),
        }
    }
}

fn parse_call(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice::<Value>(body)
        .map_err(|e| {
            text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body into Call protobuf: {e}"),
            )
        })
        .and_then(|v| {
            if v.is_object() {
                Ok(v)
            } else {
                Err(text(
                    StatusCode::BAD_REQUEST,
                    "Failed to parse body into Call protobuf: not a JSON object",
                ))
            }
        })
}

fn field<T: serde::de::DeserializeOwned>(
    call: &Value,
    pointer: &str,
    what: &str,
) -> Result<T, Response> {
    let v = call.pointer(pointer).ok_or_else(|| {
        text(
            StatusCode::BAD_REQUEST,
            format!("Failed to validate scheduler::Call: Expecting '{what}' to be present"),
        )
    })?;
    serde_json::from_value(v.clone()).map_err(|e| {
        text(
            StatusCode::BAD_REQUEST,
            format!("Failed to parse body into Call protobuf: '{what}': {e}"),
        )
    })
}

fn optional<T: serde::de::DeserializeOwned>(
    call: &Value,
    pointer: &str,
    what: &str,
) -> Result<Option<T>, Response> {
    match call.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body into Call protobuf: '{what}': {e}"),
            )
        }),
    }
}

/// `POST /api/v1/scheduler`.
async fn scheduler(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match scheduler_call(shared, headers, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn scheduler_call(
    shared: Shared,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    check_json(&headers)?;
    let call = parse_call(&body)?;
    let kind = call
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            text(
                StatusCode::BAD_REQUEST,
                "Failed to validate scheduler::Call: Expecting 'type' to be present",
            )
        })?
        .to_string();
    if kind == "SUBSCRIBE" {
        let info: FrameworkInfo = field(
            &call,
            "/subscribe/framework_info",
            "subscribe.framework_info",
        )?;
        let call_fw = call.pointer("/framework_id/value").and_then(Value::as_str);
        let info_fw = info.id.as_ref().map(|i| i.value.as_str());
        if call_fw != info_fw {
            return Err(text(StatusCode::BAD_REQUEST, "Failed to validate scheduler::Call: 'framework_id' differs from 'subscribe.framework_info.id'"));
        }
        if headers.contains_key("mesos-stream-id") {
            return Err(text(StatusCode::BAD_REQUEST, "Failed to validate scheduler::Call: Subscribe calls should not include the 'Mesos-Stream-Id' header"));
        }
        let stream_id = uuid::Uuid::new_v4().to_string();
        let (framework_id, rx) = shared
            .lock()
            .subscribe(info, stream_id.clone())
            .map_err(IntoResponse::into_response)?;
        let on_close = {
            let shared = shared.clone();
            let stream_id = stream_id.clone();
            move || {
                shared
                    .lock()
                    .framework_disconnected(&framework_id, &stream_id)
            }
        };
        return Ok(stream_response(
            rx,
            on_close,
            Some(("mesos-stream-id", stream_id)),
        ));
    }
    let framework_id: Id = field(&call, "/framework_id", "framework_id")?;
    let stream_id = headers.get("mesos-stream-id").and_then(|v| v.to_str().ok());
    let mut m = shared.lock();
    m.check_caller(&framework_id.value, stream_id)
        .map_err(IntoResponse::into_response)?;
    let fw = framework_id.value.as_str();
    match kind.as_str() {
        "TEARDOWN" => {
            m.teardown(fw);
        }
        "ACCEPT" => {
            let offer_ids: Vec<Id> = field(&call, "/accept/offer_ids", "accept.offer_ids")?;
            let operations: Vec<Value> =
                optional(&call, "/accept/operations", "accept.operations")?.unwrap_or_default();
            let filters: Option<api::Filters> =
                optional(&call, "/accept/filters", "accept.filters")?;
            m.accept(fw, &offer_ids, &operations, filters.as_ref());
        }
        "DECLINE" => {
            let offer_ids: Vec<Id> = field(&call, "/decline/offer_ids", "decline.offer_ids")?;
            let filters: Option<api::Filters> =
                optional(&call, "/decline/filters", "decline.filters")?;
            m.decline(fw, &offer_ids, filters.as_ref());
        }
        "REVIVE" => m.revive(fw),
        "SUPPRESS" => m.suppress(fw),
        "KILL" => {
            let task_id: Id = field(&call, "/kill/task_id", "kill.task_id")?;
            let agent_id: Option<Id> = optional(&call, "/kill/agent_id", "kill.agent_id")?;
            let grace: Option<i64> = optional(
                &call,
                "/kill/kill_policy/grace_period/nanoseconds",
                "kill.kill_policy",
            )?;
            m.kill(fw, &task_id, agent_id.as_ref(), grace);
        }
        "SHUTDOWN" => {
            let agent_id: Id = field(&call, "/shutdown/agent_id", "shutdown.agent_id")?;
            let _executor_id: Id = field(&call, "/shutdown/executor_id", "shutdown.executor_id")?;
            // Executors here run one task each: shutting one down is killing its tasks.
            let tasks: Vec<Id> = m
                .frameworks
                .get(fw)
                .map(|f| {
                    f.tasks
                        .values()
                        .filter(|t| {
                            t.info.agent_id == agent_id
                                && t.executor_id.as_deref() == Some(_executor_id.value.as_str())
                        })
                        .map(|t| t.info.task_id.clone())
                        .collect()
                })
                .unwrap_or_default();
            for t in tasks {
                m.kill(fw, &t, Some(&agent_id), None);
            }
        }
        "ACKNOWLEDGE" => {
            let agent_id: Id = field(&call, "/acknowledge/agent_id", "acknowledge.agent_id")?;
            let task_id: Id = field(&call, "/acknowledge/task_id", "acknowledge.task_id")?;
            let uuid: String = field(&call, "/acknowledge/uuid", "acknowledge.uuid")?;
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode(&uuid)
                .map(|b| b.len())
                != Ok(16)
            {
                return Err(text(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to validate scheduler::Call: Not a valid UUID: '{uuid}'"),
                ));
            }
            m.acknowledge(fw, &agent_id, &task_id, uuid);
        }
        "RECONCILE" => {
            let tasks: Vec<Value> =
                optional(&call, "/reconcile/tasks", "reconcile.tasks")?.unwrap_or_default();
            let mut list = Vec::new();
            for t in tasks {
                let task_id: Id = field(&t, "/task_id", "reconcile.tasks.task_id")?;
                let agent_id: Option<Id> = optional(&t, "/agent_id", "reconcile.tasks.agent_id")?;
                list.push((task_id, agent_id));
            }
            m.reconcile(fw, &list);
        }
        "MESSAGE" => {
            let agent_id: Id = field(&call, "/message/agent_id", "message.agent_id")?;
            let executor_id: Id = field(&call, "/message/executor_id", "message.executor_id")?;
            let data: String = field(&call, "/message/data", "message.data")?;
            m.framework_message(fw, &agent_id, &executor_id, data);
        }
        "REQUEST" => {}
        other => {
            return Err(text(
                StatusCode::BAD_REQUEST,
                format!("Failed to validate scheduler::Call: Unsupported call type '{other}'"),
            ));
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Calls other than SUBSCRIBE come from agents with an open stream only, over a connection
/// from the address the agent subscribed from (agent ids are public in `/master/state`).
fn registered(m: &Master, agent_id: &Id, peer: Option<IpAddr>) -> Result<(), Response> {
    let refused = |why: &str| {
        Err(text(
            StatusCode::FORBIDDEN,
            format!("Agent {} {why}", agent_id.value),
        ))
    };
    match m.agents.get(&agent_id.value) {
        Some(a) if a.active() => match (a.peer, peer) {
            (Some(subscribed), Some(now)) if subscribed != now => {
                refused("is registered from another address")
            }
            _ => Ok(()),
        },
        _ => refused("is not registered"),
    }
}

/// The address a request came from (none for in-process callers).
fn peer_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// `POST /api/v1/agent`: the agent protocol.
async fn agent_api(
    State(shared): State<Shared>,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    let call: AgentCall = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse agent call: {e}"),
            )
        }
    };
    let peer = peer_ip(&extensions);
    match call {
        AgentCall::Subscribe {
            agent_id,
            info,
            tasks,
        } => agent_subscribe(shared, peer, agent_id, info, tasks).await,
        AgentCall::Update {
            agent_id,
            framework_id,
            mut status,
        } => {
            let mut m = shared.lock();
            if let Err(refused) = registered(&m, &agent_id, peer) {
                return refused;
            }
            // An agent reports its own tasks only.
            let placed = m
                .frameworks
                .get(&framework_id.value)
                .and_then(|f| f.tasks.get(&status.task_id.value))
                .map(|t| t.info.agent_id.value.clone());
            if placed.is_some_and(|a| a != agent_id.value) {
                return text(
                    StatusCode::FORBIDDEN,
                    format!(
                        "Task {} does not run on agent {}",
                        status.task_id.value, agent_id.value
                    ),
                );
            }
            status.agent_id = Some(agent_id);
            m.apply_update(&framework_id.value, status);
            StatusCode::ACCEPTED.into_response()
        }
        AgentCall::Message {
            agent_id,
            framework_id,
            executor_id,
            data,
        } => {
            let mut m = shared.lock();
            if let Err(refused) = registered(&m, &agent_id, peer) {
                return refused;
            }
            m.executor_message(&framework_id.value, &agent_id, &executor_id, data);
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// An agent's SUBSCRIBE: checked (see [`Master::check_agent_subscriber`]), admitted to the
/// registry, then answered with its event stream.
async fn agent_subscribe(
    shared: Shared,
    peer: Option<IpAddr>,
    agent_id: Option<Id>,
    info: crate::protocol::AgentInfo,
    tasks: Vec<crate::protocol::TaskReport>,
) -> Response {
    let total = match Resources::from_api(&info.resources) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Invalid agent resources: {e}"),
            )
        }
    };
    let refused = |why: String| {
        tracing::warn!(?peer, reason = %why, "agent subscription refused");
        text(StatusCode::FORBIDDEN, why)
    };
    let checked = shared
        .lock()
        .check_agent_subscriber(agent_id.as_ref(), &info, peer);
    if let Err(why) = checked {
        return refused(why);
    }
    // Admitted to the registry before the agent hears it is registered.
    let id = shared.lock().agent_id_for(agent_id);
    if let Err(e) = shared.registry.admit(&id, &info).await {
        tracing::error!(agent_id = %id, error = %e, "cannot admit agent to the registry");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Registry unavailable: {e}"),
        );
    }
    let (id, session, rx) = {
        let mut m = shared.lock();
        // Checked again under the lock that subscribes: another agent may have taken the id
        // while this one was admitted.
        let id = Id::new(id);
        if let Err(why) = m.check_agent_subscriber(Some(&id), &info, peer) {
            drop(m);
            return refused(why);
        }
        let subscribed = m.agent_subscribe(Some(id), info, tasks, total);
        if let Some(agent) = m.agents.get_mut(&subscribed.0) {
            agent.peer = peer;
        }
        subscribed
    };
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(64);
    // Frame the agent's events on the way out.
    let mut rx = rx;
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let Ok(text) = serde_json::to_vec(&ev) else {
                continue;
            };
            if tx.send(recordio::encode(&text)).await.is_err() {
                break;
            }
        }
    });
    let on_close = move || shared.lock().agent_disconnected(&id, session);
    stream_response(out, on_close, None)
}

/// Pieces of `/master/state` queued for the client at most; the renderer waits for a slow
/// client here, holding none of the master's locks.
const STATE_PIECES_IN_FLIGHT: usize = 4;

/// `/master/state`, streamed as it is rendered (see [`views::write_state`]).
async fn state_endpoint(State(shared): State<Shared>) -> Response {
    let flags = shared.flags();
    stream_rendered(move |out| views::write_state(&shared.master, &flags, out))
}

/// A JSON answer streamed as `render` writes it, piece by piece, on a blocking thread.
fn stream_rendered(
    render: impl FnOnce(&mut PieceSender) -> std::io::Result<()> + Send + 'static,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(STATE_PIECES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = render(&mut PieceSender(tx)) {
            tracing::debug!(error = %e, "a streamed answer was not sent whole");
        }
    });
    let pieces = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|piece| (Ok::<_, std::io::Error>(piece), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(pieces),
    )
        .into_response()
}

/// Hands rendered pieces to the response body; fails once the client is gone.
struct PieceSender(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for PieceSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `/master/state-summary`, streamed as it is rendered (see [`views::write_state_summary`]).
async fn state_summary(State(shared): State<Shared>) -> Response {
    stream_rendered(move |out| views::write_state_summary(&shared.master, out))
}

async fn slaves(State(shared): State<Shared>) -> Response {
    let m = shared.lock();
    let mut agents: Vec<_> = m.agents.values().collect();
    agents.sort_by_key(|a| a.id.clone());
    Json(json!({
        "slaves": agents.iter().map(|a| views::agent_v0(a)).collect::<Vec<_>>(),
        "recovered_slaves": m.recovered_agents.iter().map(|(id, i)| json!({"id": id, "hostname": i.hostname, "port": i.port})).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn frameworks(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let m = shared.lock();
    let want = q.get("framework_id");
    let mut fws: Vec<_> = m
        .frameworks
        .values()
        .filter(|f| f.active)
        .filter(|f| want.is_none_or(|w| w == f.id()))
        .collect();
    fws.sort_by_key(|f| f.id().to_string());
    Json(json!({
        "frameworks": fws.iter().map(|f| views::framework_v0(&m, f)).collect::<Vec<_>>(),
        "completed_frameworks": m.completed_frameworks.iter().map(|f| views::framework_v0(&m, f)).collect::<Vec<_>>(),
        "unregistered_frameworks": [],
    }))
    .into_response()
}

async fn tasks(State(shared): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let offset: usize = q.get("offset").and_then(|l| l.parse().ok()).unwrap_or(0);
    let descending = q.get("order").is_none_or(|o| o != "asc");
    let m = shared.lock();
    let mut all: Vec<&state::Task> = m
        .frameworks
        .values()
        .filter(|f| q.get("framework_id").is_none_or(|w| w == f.id()))
        .flat_map(|f| f.tasks.values().chain(f.completed_tasks.iter()))
        .filter(|t| q.get("task_id").is_none_or(|w| *w == t.info.task_id.value))
        .collect();
    all.sort_by(|a, b| {
        let ta = a.statuses.first().and_then(|s| s.timestamp).unwrap_or(0.0);
        let tb = b.statuses.first().and_then(|s| s.timestamp).unwrap_or(0.0);
        ta.partial_cmp(&tb).unwrap_or(std::cmp::Ordering::Equal)
    });
    if descending {
        all.reverse();
    }
    let page: Vec<Value> = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(views::task_v0)
        .collect();
    Json(json!({"tasks": page})).into_response()
}

/// `/redirect`: to the leading master's base URL (itself if it leads).
async fn redirect(State(shared): State<Shared>) -> Response {
    let mut leadership = *shared.leadership.borrow();
    if leadership.leading {
        leadership.leader = Some(shared.config.listen);
    }
    to_leader(leadership, "")
}

async fn teardown_endpoint(State(shared): State<Shared>, RawForm(form): RawForm) -> Response {
    let body = String::from_utf8_lossy(&form).to_string();
    let id = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("frameworkId="));
    let Some(id) = id else {
        return text(
            StatusCode::BAD_REQUEST,
            "Missing 'frameworkId' query parameter in the request body",
        );
    };
    if shared.lock().teardown(id) {
        StatusCode::OK.into_response()
    } else {
        text(
            StatusCode::BAD_REQUEST,
            format!("No framework found with specified ID: {id}"),
        )
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    Json(views::metrics(&shared.lock())).into_response()
}

/// `POST /api/v1`: the operator API.
async fn operator(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check_json(&headers) {
        return r;
    }
    let call = match parse_call(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let kind = call
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut m = shared.lock();
    let get_tasks = || {
        let tasks: Vec<Value> = m
            .frameworks
            .values()
            .flat_map(|f| f.tasks.values())
            .map(views::task_v1)
            .collect();
        let completed: Vec<Value> = m
            .frameworks
            .values()
            .flat_map(|f| f.completed_tasks.iter())
            .map(views::task_v1)
            .collect();
        json!({"tasks": tasks, "completed_tasks": completed, "pending_tasks": [], "orphan_tasks": [], "unreachable_tasks": []})
    };
    let get_agents = || json!({"agents": m.agents.values().map(views::agent_v1).collect::<Vec<_>>(), "recovered_agents": []});
    let get_frameworks = || {
        let fws: Vec<Value> = m
            .frameworks
            .values()
            .map(|f| json!({"framework_info": f.info, "active": f.active, "connected": f.connected(), "recovered": f.recovered, "registered_time": {"nanoseconds": (f.registered_time * 1e9) as i64}}))
            .collect();
        let done: Vec<Value> = m.completed_frameworks.iter().map(|f| json!({"framework_info": f.info, "active": false, "connected": false, "recovered": false})).collect();
        json!({"frameworks": fws, "completed_frameworks": done})
    };
    let get_state = || json!({"get_tasks": get_tasks(), "get_executors": {"executors": []}, "get_frameworks": get_frameworks(), "get_agents": get_agents()});
    let v = match kind.as_str() {
        "GET_HEALTH" => json!({"type": "GET_HEALTH", "get_health": {"healthy": true}}),
        "GET_VERSION" => {
            json!({"type": "GET_VERSION", "get_version": {"version_info": views::version()}})
        }
        "GET_FLAGS" => {
            json!({"type": "GET_FLAGS", "get_flags": {"flags": shared.flags().as_object().map(|o| o.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>()).unwrap_or_default()}})
        }
        "GET_STATE" => json!({"type": "GET_STATE", "get_state": get_state()}),
        "GET_AGENTS" => json!({"type": "GET_AGENTS", "get_agents": get_agents()}),
        "GET_FRAMEWORKS" => json!({"type": "GET_FRAMEWORKS", "get_frameworks": get_frameworks()}),
        "GET_TASKS" => json!({"type": "GET_TASKS", "get_tasks": get_tasks()}),
        "GET_MASTER" => {
            json!({"type": "GET_MASTER", "get_master": {"master_info": m.master_info(), "start_time": m.start_time, "elected_time": m.elected_time}})
        }
        "SUBSCRIBE" => {
            let snapshot = json!({"type": "SUBSCRIBED", "subscribed": {"get_state": get_state(), "heartbeat_interval_seconds": HEARTBEAT_SECS}});
            let (tx, rx) = tokio::sync::mpsc::channel(state::STREAM_BUFFER);
            let _ = tx.try_send(recordio::encode(snapshot.to_string().as_bytes()));
            // Under the lock the snapshot was taken in: no event falls between the two.
            m.add_subscriber(tx);
            drop(m);
            return stream_response(rx, || {}, None);
        }
        "" => {
            return text(
                StatusCode::BAD_REQUEST,
                "Failed to validate master::Call: Expecting 'type' to be present",
            )
        }
        other => {
            return text(
                StatusCode::NOT_IMPLEMENTED,
                format!("Operator call {other} is not supported by dcos-rs"),
            )
        }
    };
    Json(v).into_response()
}
