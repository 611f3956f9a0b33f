//! The running Marathon: the shared state behind the REST API, the app operations the API
//! calls ([`commands`]), and the scheduler loop ([`control`]) that keeps a subscription to
//! the Mesos master, answers offers ([`matching`], [`launch`]), follows status updates
//! ([`updates`]) and drives every app toward its definition.
//!
//! Every change of the stored state goes the same way: planned under the state lock,
//! written in one `write_all` without it, then applied under it again. Changes take turns
//! (`Marathon::changes`), so what was planned is still what is applied; the state lock
//! itself is never held across a store write, and readers (the REST API, health checks)
//! never wait for the store.

mod commands;
mod control;
pub(crate) mod launch;
mod matching;
mod updates;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dcos_mesos_api::scheduler::{CallBody, Connection};
use dcos_store::{AnyStore, Write};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::persist::Persist;
use crate::state::{AppEntry, Deployment, State};

pub use launch::task_name;

/// The store writes of Marathon's records.
type P = Persist<AnyStore>;

/// Events to publish once a change is applied: `(eventType, body)`.
pub(crate) type Emits = Vec<(&'static str, Value)>;

/// Events buffered for `/v2/events` subscribers before a slow one misses some.
const EVENT_BUFFER: usize = 1024;
/// Calls to the master (offer answers, acknowledgements) sent at once.
const CALLS_IN_FLIGHT: usize = 32;
/// Status updates handled (and stored) together at most.
const UPDATE_BATCH: usize = 1024;
/// Acknowledgements and kills sent in the background at most: beyond this, reading the next
/// status updates waits for the master to take them.
const CALLS_QUEUED: usize = 4 * UPDATE_BATCH;

/// An API failure, rendered as Marathon renders it (see `http`).
#[derive(Debug)]
pub enum ApiError {
    /// 422 with violations.
    Invalid(crate::validate::Rejected),
    /// 404.
    NotFound(String),
    /// 409 because of deployments.
    Locked {
        /// The message.
        message: String,
        /// The conflicting deployments.
        deployments: Vec<String>,
    },
    /// 409 for other conflicts.
    Conflict(String),
    /// 400.
    BadRequest(String),
    /// 500: the store failed; nothing was changed.
    Internal(String),
}

impl From<crate::persist::Error> for ApiError {
    fn from(e: crate::persist::Error) -> Self {
        tracing::error!(error = %e, "store write failed");
        ApiError::Internal(format!("{e}"))
    }
}

/// An event for `/v2/events`.
#[derive(Clone, Debug)]
pub struct Event {
    /// `eventType`.
    pub kind: String,
    /// The JSON, with `eventType` and `timestamp`.
    pub data: Value,
}

/// Marathon's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The masters to subscribe at, in order.
    pub masters: Vec<SocketAddr>,
    /// The host this Marathon runs on (framework `hostname`, `/v2/leader`).
    pub hostname: String,
    /// Its HTTP port.
    pub http_port: u16,
    /// The framework name.
    pub framework_name: String,
    /// Whether Marathons on several masters elect a leader (the ZooKeeper store).
    pub ha: bool,
    /// Its service account's login, when it must authenticate to the master (strict).
    pub login: Option<dcos_iam::client::ServiceLogin>,
}

/// What the REST API and the scheduler loop share.
#[derive(Clone)]
pub struct Marathon {
    state: Arc<Mutex<State>>,
    /// Held by a change of the stored state from its plan to its apply, so that changes
    /// take turns; taken before the state lock, never while holding it.
    changes: Arc<Mutex<()>>,
    persist: Persist<AnyStore>,
    connection: Arc<std::sync::Mutex<Option<Connection>>>,
    /// Acknowledgements and kills waiting to go out in the background, at most `CALLS_QUEUED`.
    calls_queued: Arc<tokio::sync::Semaphore>,
    events: broadcast::Sender<Event>,
    /// The configuration.
    pub settings: Arc<Settings>,
    /// When this Marathon started.
    pub started: Instant,
    /// Cancelled when Marathon stops: long-lived responses (`/v2/events`) end with it.
    pub shutdown: CancellationToken,
}

impl Marathon {
    /// Loads the stored state.
    pub async fn load(
        persist: Persist<AnyStore>,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, crate::persist::Error> {
        let loaded = persist.load().await?;
        let mut state = State {
            framework_id: loaded.framework_id,
            ..State::default()
        };
        for mut s in loaded.apps {
            // `ports` is derived from the port definitions, not stored.
            s.app.ports = s.app.port_definitions.iter().map(|p| p.port).collect();
            state.apps.insert(
                s.app.id.clone(),
                AppEntry::new(s.app, s.versions, s.deleting),
            );
        }
        for i in loaded.instances {
            state.instances.insert(i.task_id.clone(), i);
        }
        for d in loaded.deployments {
            state.deployments.insert(d.id.clone(), d);
        }
        tracing::info!(
            apps = state.apps.len(),
            instances = state.instances.len(),
            deployments = state.deployments.len(),
            "loaded Marathon state"
        );
        Ok(Marathon {
            state: Arc::new(Mutex::new(state)),
            changes: Arc::new(Mutex::new(())),
            persist,
            connection: Arc::new(std::sync::Mutex::new(None)),
            calls_queued: Arc::new(tokio::sync::Semaphore::new(CALLS_QUEUED)),
            events: broadcast::channel(EVENT_BUFFER).0,
            settings: Arc::new(settings),
            started: Instant::now(),
            shutdown,
        })
    }

    /// Locks the state.
    pub async fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().await
    }

    /// Subscribes to events.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Publishes an event.
    pub fn emit(&self, kind: &str, mut data: Value) {
        data["eventType"] = json!(kind);
        data["timestamp"] = json!(api::now());
        let _ = self.events.send(Event {
            kind: kind.into(),
            data,
        });
    }

    /// Publishes the events of an applied change.
    pub(crate) fn emit_all(&self, emits: Emits) {
        for (kind, data) in emits {
            self.emit(kind, data);
        }
    }

    /// The current Mesos connection, if subscribed.
    pub fn connection(&self) -> Option<Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The master the framework is subscribed at.
    pub fn master(&self) -> Option<String> {
        self.connection().map(|c| c.master)
    }

    /// One change of the stored state: `plan` checks it against the state and says what to
    /// write, the writes are stored in one transaction without the state lock, then `apply`
    /// makes the change current and its events are published. Nothing changes when `plan`
    /// refuses or the store fails.
    async fn change<T, R>(
        &self,
        plan: impl FnOnce(&State) -> Result<(T, Vec<Write>), ApiError>,
        apply: impl FnOnce(&mut State, T, &mut Emits) -> R,
    ) -> Result<R, ApiError> {
        let _turn = self.changes.lock().await;
        let (planned, writes) = plan(&*self.lock().await)?;
        self.persist.apply(writes).await?;
        let mut emits = Vec::new();
        let result = apply(&mut *self.lock().await, planned, &mut emits);
        self.emit_all(emits);
        Ok(result)
    }

    /// Asks the master for offers again (after a change that needs launches).
    fn revive(&self) {
        if let Some(conn) = self.connection() {
            tokio::spawn(async move {
                let _ = conn.call(CallBody::Revive).await;
            });
        }
    }

    /// Sends acknowledgements and kills in the background, so that the next burst of
    /// updates is read and stored meanwhile; waits only when `CALLS_QUEUED` are pending.
    async fn send_in_background(&self, calls: Vec<CallBody>) {
        let Some(conn) = self.connection() else {
            return;
        };
        if calls.is_empty() {
            return;
        }
        let queued = calls.len().clamp(1, CALLS_QUEUED) as u32;
        let Ok(permit) = self.calls_queued.clone().acquire_many_owned(queued).await else {
            return;
        };
        let current = self.connection.clone();
        tokio::spawn(async move {
            futures::stream::iter(calls)
                .for_each_concurrent(CALLS_IN_FLIGHT, |call| {
                    let conn = conn.clone();
                    let current = current.clone();
                    async move {
                        // After a failover the new master resends what was not acknowledged;
                        // calls to the old one would only hold the queue.
                        let same = current
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .as_ref()
                            .is_some_and(|c| c.stream_id == conn.stream_id);
                        if same {
                            let _ = conn.call(call).await;
                        }
                    }
                })
                .await;
            drop(permit);
        });
    }
}

/// Runs one app's `step` so that a bug its definition triggers costs that app the step, not
/// every app the scheduler: the panic is caught, logged with the app, and the step skipped.
/// Unwind safety is asserted: a step holds the state only by reference, and an interrupted
/// one leaves at worst that app's bookkeeping half-updated, which the next pass recomputes.
pub(crate) fn isolated<T>(app_id: &str, step: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(cause) => {
            let cause = cause
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| cause.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(app = app_id, step, cause, "an app's step panicked; skipped");
            None
        }
    }
}

/// Marathon's answer to a change of an app that a deployment holds.
fn locked(d: &Deployment) -> ApiError {
    ApiError::Locked {
        message: format!("App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{}'.", d.id),
        deployments: vec![d.id.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_app_step_is_skipped_not_fatal() {
        assert_eq!(isolated("/ok", "test", || 7), Some(7));
        let r: Option<()> = isolated("/bad", "test", || panic!("an app's bug"));
        assert_eq!(r, None);
    }
}
