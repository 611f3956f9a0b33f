//! The running Marathon: the shared state behind the REST API, the app operations the API
//! calls (each persisted before it is acknowledged), and the scheduler loop that keeps a
//! subscription to the Mesos master, answers offers, follows status updates and drives
//! every app toward its definition.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcos_mesos::api::{FrameworkInfo, Id};
use dcos_mesos::resources::Resources;
use dcos_mesos::scheduler::{self, Connection};
use dcos_store::AnyStore;
use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use crate::api::{self, App, AppSpec};
use crate::offer::{self, OfferStats, Place};
use crate::persist::{Persist, StoredApp};
use crate::state::{Action, AppEntry, Backoff, Deployment, Instance, State, MAX_VERSIONS};
use crate::validate;

/// The store writes of Marathon's records.
type P = Persist<AnyStore>;

/// Marathon's default framework failover timeout: one week.
const FAILOVER_TIMEOUT_SECS: f64 = 604_800.0;
/// How often the controller looks at every app.
const TICK: Duration = Duration::from_millis(250);
/// A KILL not answered within this is sent again.
const KILL_RETRY: Duration = Duration::from_secs(10);
/// Offers that fit nothing come back after this.
const DECLINE_IDLE_SECS: f64 = 5.0;
/// Offers declined while an app waits come back after this.
const DECLINE_WAITING_SECS: f64 = 1.0;
/// Events buffered for `/v2/events` subscribers before a slow one misses some.
const EVENT_BUFFER: usize = 1024;
/// Calls to the master (offer answers, acknowledgements) sent at once.
const CALLS_IN_FLIGHT: usize = 32;
/// How often every task is reconciled (Marathon's `reconciliation_interval`).
const RECONCILE_INTERVAL: Duration = Duration::from_secs(600);
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
}

/// What the REST API and the scheduler loop share.
#[derive(Clone)]
pub struct Marathon {
    state: Arc<Mutex<State>>,
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

    // === app operations ===

    /// A version string later than every version of `app_id`.
    fn next_version(entry: Option<&AppEntry>) -> String {
        let mut v = api::now();
        if let Some(last) = entry.and_then(|e| e.versions.keys().next_back()) {
            if v <= *last {
                // Two changes in one millisecond: step past the last one.
                let t = humantime::parse_rfc3339(last).unwrap_or(std::time::SystemTime::now());
                v = api::timestamp(t + Duration::from_millis(1));
            }
        }
        v
    }

    /// Picks free service ports for `port: 0` definitions (Marathon's 10000-20000).
    fn assign_service_ports(state: &State, app: &mut App) -> Result<(), ApiError> {
        let mut used = state.used_service_ports(&app.id);
        for pd in app.port_definitions.iter().filter(|p| p.port != 0) {
            used.insert(pd.port);
        }
        // One pass over the range for all definitions: a definition with thousands of
        // `port: 0` entries must not scan it once each under the state lock.
        let mut free = (u32::from(api::SERVICE_PORT_MIN)..u32::from(api::SERVICE_PORT_MAX))
            .filter(|p| !used.contains(p));
        for pd in app.port_definitions.iter_mut().filter(|p| p.port == 0) {
            pd.port = free.next().ok_or_else(|| {
                ApiError::BadRequest("All service ports (10000-20000) are in use".into())
            })?;
        }
        app.ports = app.port_definitions.iter().map(|p| p.port).collect();
        Ok(())
    }

    /// Writes an app and its deployment, then makes them current. Returns the deployment.
    async fn commit(
        &self,
        state: &mut State,
        mut app: App,
        action: Action,
        original: Option<App>,
        force: bool,
    ) -> Result<Deployment, ApiError> {
        if let Some(d) = state.deployment_of(&app.id) {
            if !force {
                return Err(locked(d));
            }
        }
        let entry = state.apps.get(&app.id);
        let version = Self::next_version(entry);
        app.version = version.clone();
        let config_changed = original.as_ref().is_none_or(|o| !o.same_config(&app))
            || action == Action::RestartApplication;
        app.version_info.last_scaling_at = version.clone();
        if config_changed {
            app.version_info.last_config_change_at = version.clone();
        }
        let mut versions = entry.map(|e| e.versions.clone()).unwrap_or_default();
        versions.insert(version.clone(), app.clone());
        while versions.len() > MAX_VERSIONS {
            let first = versions.keys().next().cloned().unwrap_or_default();
            versions.remove(&first);
        }
        let deleting = action == Action::StopApplication;
        let stored = StoredApp {
            app: app.clone(),
            versions: versions.clone(),
            deleting,
        };
        let deployment = Deployment {
            id: uuid::Uuid::new_v4().to_string(),
            version: version.clone(),
            app_id: app.id.clone(),
            action,
            original,
        };
        // Forced: the deployments it overrides end first.
        let replaced: Vec<Deployment> = state
            .deployments
            .values()
            .filter(|d| d.app_id == app.id)
            .cloned()
            .collect();
        // One transaction for the whole change: a crash or a failed write leaves the stored
        // state before it or after it, never an app without its deployment.
        let mut writes = vec![P::app_write(&stored)?, P::deployment_write(&deployment)?];
        writes.extend(replaced.iter().map(|d| P::deployment_removal(&d.id)));
        self.persist.apply(writes).await?;
        for d in replaced {
            state.deployments.remove(&d.id);
            self.emit(
                "deployment_failed",
                json!({"id": d.id, "plan": d.to_json()}),
            );
        }
        let e = state
            .apps
            .entry(app.id.clone())
            .or_insert_with(|| AppEntry::new(app.clone(), BTreeMap::new(), false));
        e.app = app.clone();
        e.versions = versions;
        e.deleting = deleting;
        if config_changed {
            e.backoff = Backoff::default();
            e.offers = OfferStats::default();
        }
        state
            .deployments
            .insert(deployment.id.clone(), deployment.clone());
        self.emit(
            "deployment_info",
            json!({"plan": deployment.to_json(), "currentStep": {"actions": [{"action": action.name(), "app": app.id}]}}),
        );
        self.revive();
        Ok(deployment)
    }

    /// POST /v2/apps.
    pub async fn create_app(&self, spec: AppSpec) -> Result<(App, Deployment), ApiError> {
        let mut app = validate::resolve(spec, App::with_defaults(String::new()))
            .map_err(ApiError::Invalid)?;
        let mut state = self.lock().await;
        if state.apps.contains_key(&app.id) {
            return Err(ApiError::Conflict(format!(
                "An app with id [{}] already exists.",
                app.id
            )));
        }
        if state
            .apps
            .keys()
            .any(|k| k.starts_with(&format!("{}/", app.id)))
            || state
                .apps
                .keys()
                .any(|k| app.id.starts_with(&format!("{k}/")))
        {
            return Err(ApiError::Conflict(format!(
                "A group with id [{}] already exists or the app's path is taken by an app.",
                app.id
            )));
        }
        Self::assign_service_ports(&state, &mut app)?;
        let d = self
            .commit(
                &mut state,
                app.clone(),
                Action::StartApplication,
                None,
                false,
            )
            .await?;
        let app = state.apps.get(&d.app_id).map_or(app, |e| e.app.clone());
        self.emit(
            "api_post_event",
            json!({"clientIp": null, "uri": format!("/v2/apps{}", app.id), "appDefinition": app}),
        );
        Ok((app, d))
    }

    /// PUT/PATCH /v2/apps/{id}: a partial update (or a create when the app does not exist).
    pub async fn update_app(
        &self,
        id: &str,
        mut spec: AppSpec,
        force: bool,
    ) -> Result<(Deployment, bool), ApiError> {
        let mut state = self.lock().await;
        // An app being deleted is not created again under its feet: its StopApplication
        // deployment would be replaced and the app left half-removed.
        if state.apps.get(id).is_some_and(|e| e.deleting) {
            return Err(ApiError::Conflict(format!(
                "App '{id}' is being deleted; wait for its deployment to finish"
            )));
        }
        // The path names the app; an id in the body is replaced by it, as in Marathon.
        spec.id = Some(id.to_string());
        let existing = state
            .apps
            .get(id)
            .filter(|e| !e.deleting)
            .map(|e| e.app.clone());
        let created = existing.is_none();
        let base = existing
            .clone()
            .unwrap_or_else(|| App::with_defaults(String::new()));
        let mut app = validate::resolve(spec, base).map_err(ApiError::Invalid)?;
        Self::assign_service_ports(&state, &mut app)?;
        let action = match &existing {
            None => Action::StartApplication,
            Some(old) if old.same_config(&app) => Action::ScaleApplication,
            Some(_) => Action::RestartApplication,
        };
        let d = self
            .commit(&mut state, app, action, existing, force)
            .await?;
        Ok((d, created))
    }

    /// POST /v2/apps/{id}/restart.
    pub async fn restart_app(&self, id: &str, force: bool) -> Result<Deployment, ApiError> {
        let mut state = self.lock().await;
        let app = Self::existing(&state, id)?;
        self.commit(
            &mut state,
            app.clone(),
            Action::RestartApplication,
            Some(app),
            force,
        )
        .await
    }

    /// DELETE /v2/apps/{id}.
    pub async fn delete_app(&self, id: &str, force: bool) -> Result<Deployment, ApiError> {
        let mut state = self.lock().await;
        let app = Self::existing(&state, id)?;
        let d = self
            .commit(
                &mut state,
                app.clone(),
                Action::StopApplication,
                Some(app),
                force,
            )
            .await?;
        Ok(d)
    }

    /// Rolls an app back to one of its versions (PUT with `version`).
    pub async fn rollback_app(
        &self,
        id: &str,
        version: &str,
        force: bool,
    ) -> Result<Deployment, ApiError> {
        let mut state = self.lock().await;
        let current = Self::existing(&state, id)?;
        let target = state
            .apps
            .get(id)
            .and_then(|e| e.versions.get(version))
            .cloned()
            .ok_or_else(|| {
                ApiError::NotFound(format!("App '{id}' does not exist in version {version}"))
            })?;
        let action = if current.same_config(&target) {
            Action::ScaleApplication
        } else {
            Action::RestartApplication
        };
        self.commit(&mut state, target, action, Some(current), force)
            .await
    }

    fn existing(state: &State, id: &str) -> Result<App, ApiError> {
        state
            .apps
            .get(id)
            .filter(|e| !e.deleting)
            .map(|e| e.app.clone())
            .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))
    }

    /// DELETE /v2/deployments/{id}: without force, a new deployment back to the app as it was;
    /// with force, the deployment is simply forgotten.
    pub async fn cancel_deployment(
        &self,
        id: &str,
        force: bool,
    ) -> Result<Option<Deployment>, ApiError> {
        let mut state = self.lock().await;
        let d = state
            .deployments
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("DeploymentPlan {id} does not exist")))?;
        if force {
            self.persist.delete_deployment(id).await?;
            state.deployments.remove(id);
            self.emit(
                "deployment_failed",
                json!({"id": d.id, "plan": d.to_json()}),
            );
            return Ok(None);
        }
        let current = state.apps.get(&d.app_id).map(|e| e.app.clone());
        let rollback = match (d.original.clone(), current) {
            // A new app rolls back to not existing.
            (None, Some(app)) => {
                self.commit(
                    &mut state,
                    app.clone(),
                    Action::StopApplication,
                    Some(app),
                    true,
                )
                .await?
            }
            (Some(original), Some(app)) => {
                let action = if original.same_config(&app) {
                    Action::ScaleApplication
                } else {
                    Action::RestartApplication
                };
                self.commit(&mut state, original, action, Some(app), true)
                    .await?
            }
            (_, None) => {
                return Err(ApiError::NotFound(format!(
                    "App '{}' does not exist",
                    d.app_id
                )))
            }
        };
        Ok(Some(rollback))
    }

    /// Kills tasks; with `scale`, the apps' instances shrink by as many (one deployment per app).
    /// `wipe` forgets the task record at once.
    pub async fn kill_tasks(
        &self,
        ids: &[String],
        scale: bool,
        wipe: bool,
        force: bool,
    ) -> Result<(Vec<Instance>, Option<Deployment>), ApiError> {
        let mut state = self.lock().await;
        let mut killed = Vec::new();
        for id in ids {
            if let Some(i) = state.instances.get(id) {
                killed.push(i.clone());
            }
        }
        let mut deployment = None;
        if scale {
            let mut per_app: BTreeMap<String, u32> = BTreeMap::new();
            for i in &killed {
                *per_app.entry(i.app_id.clone()).or_default() += 1;
            }
            // Refused before anything changes: a locked app fails the whole request.
            if !force {
                if let Some(d) = per_app.keys().find_map(|a| state.deployment_of(a)) {
                    return Err(locked(d));
                }
            }
            for (app_id, n) in per_app {
                let Ok(app) = Self::existing(&state, &app_id) else {
                    continue;
                };
                let mut scaled = app.clone();
                scaled.instances = app.instances.saturating_sub(n);
                deployment = Some(
                    self.commit(
                        &mut state,
                        scaled,
                        Action::ScaleApplication,
                        Some(app),
                        force,
                    )
                    .await?,
                );
                // The killed tasks are exactly the ones to lose. The state lock is still held,
                // so no scale-down picks other victims before they are marked.
                for i in killed.iter().filter(|i| i.app_id == app_id) {
                    if let Some(inst) = state.instances.get_mut(&i.task_id) {
                        inst.killing = true;
                    }
                }
            }
        }
        let conn = self.connection();
        if wipe {
            let writes = killed.iter().map(|i| P::instance_removal(&i.task_id));
            self.persist.apply(writes.collect()).await?;
        }
        for i in &killed {
            if wipe {
                state.instances.remove(&i.task_id);
            } else if let Some(inst) = state.instances.get_mut(&i.task_id) {
                inst.killing = true;
            }
        }
        drop(state);
        if let Some(conn) = conn {
            for i in &killed {
                let _ = conn
                    .call(json!({"type": "KILL", "kill": {"task_id": {"value": i.task_id}, "agent_id": {"value": i.agent_id}}}))
                    .await;
            }
        }
        Ok((killed, deployment))
    }

    /// DELETE /v2/queue/{app}/delay.
    pub async fn reset_delay(&self, id: &str) -> Result<(), ApiError> {
        let mut state = self.lock().await;
        let e = state.apps.get_mut(id).ok_or_else(|| {
            ApiError::NotFound(format!("Application {id} not found in tasks queue."))
        })?;
        e.backoff = Backoff::default();
        drop(state);
        self.revive();
        Ok(())
    }

    /// Asks the master for offers again (after a change that needs launches).
    fn revive(&self) {
        if let Some(conn) = self.connection() {
            tokio::spawn(async move {
                let _ = conn.call(json!({"type": "REVIVE"})).await;
            });
        }
    }

    // === the scheduler loop ===

    /// Keeps subscribed to a master and drives apps until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let client = reqwest::Client::builder()
            // A standby master's 307 is followed by `scheduler::subscribe`, which then talks to
            // the leader directly.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let mut kills_sent: HashMap<String, Instant> = HashMap::new();
        let mut last_revive: Option<Instant> = None;
        let mut last_reconcile = Instant::now();
        let mut backoff = Duration::from_millis(200);
        let mut next_master = 0usize;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events: Option<scheduler::Events> = None;
        loop {
            if events.is_none() {
                let masters = &self.settings.masters;
                if masters.is_empty() {
                    tracing::error!("no Mesos masters configured");
                    return;
                }
                let master = masters[next_master % masters.len()];
                next_master += 1;
                let info = self.framework_info().await;
                let subscribed = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = scheduler::subscribe(&client, master, &info) => r,
                };
                match subscribed {
                    Ok((conn, ev, _)) => {
                        backoff = Duration::from_millis(200);
                        self.on_subscribed(conn).await;
                        last_reconcile = Instant::now();
                        kills_sent.clear();
                        events = Some(ev);
                    }
                    Err(e) => {
                        tracing::warn!(%master, error = %e, "cannot subscribe to the Mesos master; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let Some(ev) = events.as_mut() else { continue };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                event = ev.next() => match event {
                    Ok(event) => {
                        // Take what else has arrived already: a burst of status updates is
                        // stored in one write.
                        let mut batch = vec![event];
                        let mut lost = None;
                        while batch.len() < UPDATE_BATCH {
                            match ev.next().now_or_never() {
                                Some(Ok(more)) => batch.push(more),
                                Some(Err(e)) => {
                                    lost = Some(e);
                                    break;
                                }
                                None => break,
                            }
                        }
                        self.on_events(batch).await;
                        if let Some(e) = lost {
                            self.lost_master(&e);
                            events = None;
                        }
                    }
                    Err(e) => {
                        self.lost_master(&e);
                        events = None;
                    }
                },
                _ = tick.tick() => {
                    self.control(&mut kills_sent, &mut last_revive).await;
                    if last_reconcile.elapsed() >= RECONCILE_INTERVAL {
                        if let Some(conn) = self.connection() {
                            self.reconcile(&conn).await;
                        }
                        last_reconcile = Instant::now();
                    }
                }
            }
        }
    }

    /// The event stream broke: forget the connection, so calls wait for the next one.
    fn lost_master(&self, e: &scheduler::Error) {
        tracing::warn!(error = %e, "lost the Mesos master; re-subscribing");
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn framework_info(&self) -> FrameworkInfo {
        let id = self.lock().await.framework_id.clone();
        FrameworkInfo {
            user: "root".into(),
            name: self.settings.framework_name.clone(),
            id: id.map(Id::new),
            failover_timeout: Some(FAILOVER_TIMEOUT_SECS),
            checkpoint: Some(true),
            role: Some("*".into()),
            hostname: Some(self.settings.hostname.clone()),
            webui_url: Some(format!(
                "http://{}:{}",
                self.settings.hostname, self.settings.http_port
            )),
            capabilities: vec![
                json!({"type": "PARTITION_AWARE"}),
                json!({"type": "TASK_KILLING_STATE"}),
                json!({"type": "GPU_RESOURCES"}),
            ],
            ..FrameworkInfo::default()
        }
    }

    async fn on_subscribed(&self, conn: Connection) {
        tracing::info!(master = %conn.master, framework_id = %conn.framework_id, "subscribed to the Mesos master");
        {
            let mut state = self.lock().await;
            if state.framework_id.as_deref() != Some(conn.framework_id.as_str()) {
                if let Err(e) = self.persist.save_framework_id(&conn.framework_id).await {
                    tracing::error!(error = %e, "cannot store the framework id");
                }
                state.framework_id = Some(conn.framework_id.clone());
            }
        }
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        self.reconcile(&conn).await;
        self.emit("framework_message_event", json!({"message": "subscribed"}));
    }

    /// Explicit reconciliation of every known task (unknown ones come back TASK_LOST), then
    /// implicit reconciliation. On every subscription, and every `RECONCILE_INTERVAL`, as
    /// Marathon: an instance whose launch was lost on the way is found and launched again.
    async fn reconcile(&self, conn: &Connection) {
        let tasks: Vec<Value> = self
            .lock()
            .await
            .instances
            .values()
            .map(|i| json!({"task_id": {"value": i.task_id}, "agent_id": {"value": i.agent_id}}))
            .collect();
        let _ = conn
            .call(json!({"type": "RECONCILE", "reconcile": {"tasks": tasks}}))
            .await;
        let _ = conn
            .call(json!({"type": "RECONCILE", "reconcile": {"tasks": []}}))
            .await;
    }

    /// Events in order; runs of status updates are handled together.
    async fn on_events(&self, events: Vec<Value>) {
        let mut updates = Vec::new();
        for event in events {
            if event["type"] == "UPDATE" {
                updates.push(event["update"]["status"].clone());
                continue;
            }
            if !updates.is_empty() {
                self.on_updates(std::mem::take(&mut updates)).await;
            }
            self.on_event(event).await;
        }
        if !updates.is_empty() {
            self.on_updates(updates).await;
        }
    }

    async fn on_event(&self, event: Value) {
        match event["type"].as_str().unwrap_or_default() {
            "OFFERS" => {
                let offers = event["offers"]["offers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                self.on_offers(offers).await;
            }
            "UPDATE" => {
                self.on_updates(vec![event["update"]["status"].clone()])
                    .await
            }
            "ERROR" => {
                tracing::error!(message = %event["error"]["message"], "the master reported an error")
            }
            "FAILURE" => tracing::warn!(failure = %event["failure"], "executor or agent failure"),
            _ => {}
        }
    }

    async fn on_offers(&self, offers: Vec<Value>) {
        let Some(conn) = self.connection() else {
            return;
        };
        let now = Instant::now();
        let now_secs = dcos_mesos::api::now_secs();
        // Each answer, with the tasks it launches (to reconcile if it is not delivered).
        let mut calls: Vec<(Value, Option<Vec<Value>>)> = Vec::new();
        {
            let mut state = self.lock().await;
            let plans: Vec<(String, crate::state::AppPlan)> = state
                .apps
                .values()
                .filter(|e| !e.deleting)
                .filter_map(|e| {
                    let plan = isolated(&e.app.id, "plan", || state.plan(e, now, now_secs))?;
                    Some((e.app.id.clone(), plan))
                })
                .collect();
            let waiting = plans.iter().any(|(_, p)| p.waiting > 0);
            let mut wanted: BTreeMap<String, u32> = plans
                .into_iter()
                .filter(|(_, p)| p.launch > 0)
                .map(|(id, p)| (id, p.launch))
                .collect();
            // Where each app with constraints runs (agent id, hostname), gathered once for the
            // whole batch of offers and kept up to date as it launches: scanning every
            // instance per launch would make a large launch quadratic.
            let mut placed: HashMap<String, Vec<(String, String)>> = wanted
                .keys()
                .filter_map(|id| state.apps.get(id))
                .filter(|e| !e.app.constraints.is_empty())
                .map(|e| {
                    let live = state.live_instances(&e.app, now_secs);
                    let at = live.iter().map(|i| (i.agent_id.clone(), i.host.clone()));
                    (e.app.id.clone(), at.collect())
                })
                .collect();
            let (mut instances, mut accepts) = (Vec::new(), Vec::new());
            for offer in offers {
                let offer_id = offer["id"].clone();
                let agent_id = offer["agent_id"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let resources: Vec<dcos_mesos::api::Resource> =
                    serde_json::from_value(offer["resources"].clone()).unwrap_or_default();
                let role = offer["allocation_info"]["role"]
                    .as_str()
                    .unwrap_or("*")
                    .to_string();
                let mut available = match Resources::from_api(&resources) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "unusable offer; declining it");
                        calls.push((json!({"type": "DECLINE", "decline": {"offer_ids": [offer_id], "filters": {"refuse_seconds": DECLINE_IDLE_SECS}}}), None));
                        continue;
                    }
                };
                let place = offer::place_of(&offer);
                let at = api::now();
                let mut launches = Vec::new();
                for (app_id, count) in wanted.iter_mut() {
                    let Some(app) = state.apps.get(app_id).map(|e| e.app.clone()) else {
                        continue;
                    };
                    while *count > 0 {
                        let others: Vec<Place> = placed
                            .get(app_id)
                            .into_iter()
                            .flatten()
                            .map(|(agent, host)| Place {
                                hostname: host.clone(),
                                // Only the offer's own agent has known attributes here;
                                // hostname constraints need none.
                                attributes: if *agent == agent_id {
                                    place.attributes.clone()
                                } else {
                                    BTreeMap::new()
                                },
                            })
                            .collect();
                        let result = isolated(app_id, "match", || {
                            offer::match_app(&app, &available, &role, &place, &others)
                        });
                        // A panicking app gets no launches from this offer.
                        let Some(result) = result else { break };
                        let recorded = result.as_ref().map(|_| ()).map_err(Clone::clone);
                        if let Some(e) = state.apps.get_mut(app_id) {
                            e.offers.record(&agent_id, &recorded, &at);
                        }
                        let Ok(ports) = result else { break };
                        let built = isolated(app_id, "build task", || {
                            build_task(&app, &agent_id, &place.hostname, &ports)
                        });
                        let Some((task, instance, used)) = built else {
                            break;
                        };
                        available = available.sub(&used);
                        if let Some(at) = placed.get_mut(app_id) {
                            at.push((agent_id.clone(), place.hostname.clone()));
                        }
                        instances.push(instance);
                        launches.push(task);
                        *count -= 1;
                    }
                }
                if launches.is_empty() {
                    let refuse = if wanted.values().any(|c| *c > 0) || waiting {
                        DECLINE_WAITING_SECS
                    } else {
                        DECLINE_IDLE_SECS
                    };
                    calls.push((json!({"type": "DECLINE", "decline": {"offer_ids": [offer_id], "filters": {"refuse_seconds": refuse}}}), None));
                } else {
                    tracing::debug!(agent_id, tasks = launches.len(), "launching tasks");
                    accepts.push((offer_id, launches));
                }
            }
            // Every new instance of the batch is stored in one write before any is launched:
            // a restarted Marathon knows each task it may have started.
            let writes: Result<Vec<_>, _> = instances.iter().map(P::instance_write).collect();
            let stored = match writes {
                Ok(writes) => self.persist.apply(writes).await,
                Err(e) => Err(e),
            };
            match stored {
                Ok(()) => {
                    if !instances.is_empty() {
                        tracing::info!(
                            tasks = instances.len(),
                            offers = accepts.len(),
                            "launching tasks"
                        );
                    }
                    for i in instances {
                        state.instances.insert(i.task_id.clone(), i);
                    }
                    for (offer_id, launches) in accepts {
                        let tasks: Vec<Value> = launches
                            .iter()
                            .map(|t| json!({"task_id": t["task_id"], "agent_id": t["agent_id"]}))
                            .collect();
                        calls.push((json!({"type": "ACCEPT", "accept": {"offer_ids": [offer_id], "operations": [{"type": "LAUNCH", "launch": {"task_infos": launches}}], "filters": {"refuse_seconds": DECLINE_WAITING_SECS}}}), Some(tasks)));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot store the new instances; not launching them");
                    for (offer_id, _) in accepts {
                        calls.push((json!({"type": "DECLINE", "decline": {"offer_ids": [offer_id], "filters": {"refuse_seconds": DECLINE_WAITING_SECS}}}), None));
                    }
                }
            }
        }
        // The answers are independent: send several at a time.
        futures::stream::iter(calls)
            .for_each_concurrent(CALLS_IN_FLIGHT, |(call, tasks)| {
                let conn = conn.clone();
                async move {
                    let Err(e) = conn.call(call).await else { return };
                    tracing::warn!(error = %e, "offer answer not delivered");
                    // An ACCEPT that timed out may or may not have reached the master: ask
                    // for its tasks. The master answers TASK_LOST for the ones it never
                    // launched, and they are launched again.
                    if let Some(tasks) = tasks {
                        let reconcile = json!({"type": "RECONCILE", "reconcile": {"tasks": tasks}});
                        if let Err(e) = conn.call(reconcile).await {
                            tracing::warn!(error = %e, "cannot reconcile the tasks of an undelivered offer answer");
                        }
                    }
                }
            })
            .await;
    }

    /// Status updates, handled together: their instance changes are stored in one write,
    /// then their events are emitted and each is acknowledged (Mesos resends what is not).
    async fn on_updates(&self, statuses: Vec<Value>) {
        let mut writes = Vec::new();
        let mut emits = Vec::new();
        let mut acks = Vec::new();
        let mut kills = Vec::new();
        {
            let mut state = self.lock().await;
            for status in &statuses {
                let task_id = &status["task_id"]["value"];
                let agent_id = &status["agent_id"]["value"];
                let unknown = !state
                    .instances
                    .contains_key(task_id.as_str().unwrap_or_default());
                let app_id = task_id
                    .as_str()
                    .and_then(|t| state.instances.get(t))
                    .map(|i| i.app_id.clone())
                    .unwrap_or_default();
                isolated(&app_id, "status update", || {
                    Self::apply_update(&mut state, status, &mut writes, &mut emits)
                });
                if let Some(uuid) = status.get("uuid") {
                    acks.push(json!({"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": {"value": agent_id}, "task_id": {"value": task_id}, "uuid": uuid}}));
                }
                let new_state = status["state"].as_str().unwrap_or_default();
                if unknown && !dcos_mesos::api::state::is_terminal(new_state) {
                    tracing::warn!(task_id = %task_id, "killing a task Marathon does not know");
                    kills.push(json!({"type": "KILL", "kill": {"task_id": {"value": task_id}, "agent_id": {"value": agent_id}}}));
                }
            }
            if let Err(e) = self.persist.apply(writes).await {
                // Not acknowledged: the master sends these updates again.
                tracing::error!(error = %e, "cannot store instance states");
                return;
            }
        }
        for (kind, data) in emits {
            self.emit(kind, data);
        }
        let Some(conn) = self.connection() else {
            return;
        };
        let calls: Vec<Value> = acks.into_iter().chain(kills).collect();
        if calls.is_empty() {
            return;
        }
        // Sent in the background, so that the next burst is read and stored meanwhile.
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

    /// One status update's change to the state; the writes and events it needs are added to
    /// `writes` and `emits`.
    fn apply_update(
        state: &mut State,
        status: &Value,
        writes: &mut Vec<dcos_store::Write>,
        emits: &mut Vec<(&'static str, Value)>,
    ) {
        let task_id = status["task_id"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let new_state = status["state"].as_str().unwrap_or_default().to_string();
        let agent_id = status["agent_id"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let message = status["message"].as_str().unwrap_or_default().to_string();
        // A task this Marathon does not know (wiped, or from before a lost write) is killed
        // by the caller: it must not keep running unaccounted for.
        let Some(mut inst) = state.instances.get(&task_id).cloned() else {
            return;
        };
        let changed = inst.state != new_state;
        let now_secs = dcos_mesos::api::now_secs();
        inst.state = new_state.clone();
        if new_state == "TASK_RUNNING" && inst.started_at.is_none() {
            inst.started_at = Some(api::now());
        }
        if new_state == "TASK_UNREACHABLE" {
            inst.unreachable_since.get_or_insert(now_secs);
        } else {
            inst.unreachable_since = None;
        }
        if let Some(healthy) = status.get("healthy").and_then(Value::as_bool) {
            mesos_health(state, &mut inst, healthy, &message, emits);
        }
        if dcos_mesos::api::state::is_terminal(&new_state) {
            writes.push(P::instance_removal(&task_id));
            state.instances.remove(&task_id);
            state
                .recent_terminal
                .push_back((task_id.clone(), new_state.clone()));
            if state.recent_terminal.len() > 100 {
                state.recent_terminal.pop_front();
            }
            let failed = !inst.killing && is_failure(&new_state);
            if let Some(entry) = state.apps.get_mut(&inst.app_id) {
                if failed {
                    if backs_off(&new_state, status["reason"].as_str()) {
                        let delay = entry.backoff.fail(&entry.app, Instant::now());
                        tracing::info!(app = %inst.app_id, task_id, state = %new_state, ?delay, "task failed; backing off");
                    }
                    entry.last_failure = Some(json!({
                        "appId": inst.app_id,
                        "host": inst.host,
                        "message": message,
                        "state": new_state,
                        "taskId": task_id,
                        "timestamp": api::now(),
                        "version": inst.version,
                        "slaveId": inst.agent_id,
                    }));
                }
            }
        } else {
            if changed {
                match P::instance_write(&inst) {
                    Ok(w) => writes.push(w),
                    Err(e) => tracing::error!(error = %e, "cannot store an instance's state"),
                }
            }
            state.instances.insert(task_id.clone(), inst.clone());
        }
        if changed {
            emits.push((
                "status_update_event",
                json!({
                    "slaveId": agent_id,
                    "taskId": task_id,
                    "taskStatus": new_state,
                    "message": message,
                    "appId": inst.app_id,
                    "host": inst.host,
                    "ipAddresses": [{"ipAddress": inst.host, "protocol": "IPv4"}],
                    "ports": inst.ports,
                    "version": inst.version,
                }),
            ));
        }
    }

    /// One controller pass: kills the planner asks for, finished deployments, expunged and
    /// unhealthy instances.
    async fn control(
        &self,
        kills_sent: &mut HashMap<String, Instant>,
        last_revive: &mut Option<Instant>,
    ) {
        let now = Instant::now();
        let now_secs = dcos_mesos::api::now_secs();
        let mut kills: Vec<(String, String, Option<i64>)> = Vec::new();
        let mut need_offers = false;
        {
            let mut state = self.lock().await;
            let ids: Vec<String> = state.apps.keys().cloned().collect();
            for id in ids {
                let step = isolated(&id, "control", || {
                    control_app(&mut state, &id, now, now_secs)
                });
                let Some(Some((wants_offers, done))) = step else {
                    continue;
                };
                need_offers |= wants_offers;
                if done {
                    self.finish(&mut state, &id).await;
                }
            }
            // Unreachable instances past expungeAfterSeconds are forgotten.
            let expunge: Vec<String> = state
                .instances
                .values()
                .filter(|i| {
                    i.unreachable_since.is_some_and(|since| {
                        let after = state
                            .apps
                            .get(&i.app_id)
                            .map(|e| e.app.unreachable_strategy.expunge_after_seconds)
                            .unwrap_or(0);
                        now_secs - since >= after as f64
                    })
                })
                .map(|i| i.task_id.clone())
                .collect();
            if !expunge.is_empty() {
                let writes = expunge.iter().map(|id| P::instance_removal(id)).collect();
                match self.persist.apply(writes).await {
                    Ok(()) => {
                        for id in expunge {
                            state.instances.remove(&id);
                            kills_sent.remove(&id);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot expunge unreachable instances; will retry")
                    }
                }
            }
            for i in state.instances.values().filter(|i| i.killing) {
                let due = kills_sent
                    .get(&i.task_id)
                    .is_none_or(|at| now.duration_since(*at) >= KILL_RETRY);
                if due && !dcos_mesos::api::state::is_terminal(&i.state) {
                    let grace = state
                        .apps
                        .get(&i.app_id)
                        .and_then(|e| e.app.task_kill_grace_period_seconds)
                        .map(grace_nanos);
                    kills.push((i.task_id.clone(), i.agent_id.clone(), grace));
                }
            }
            kills_sent.retain(|id, _| state.instances.contains_key(id));
        }
        let Some(conn) = self.connection() else {
            return;
        };
        for (task_id, agent_id, grace) in kills {
            kills_sent.insert(task_id.clone(), now);
            let mut call = json!({"type": "KILL", "kill": {"task_id": {"value": task_id}, "agent_id": {"value": agent_id}}});
            if let Some(ns) = grace {
                call["kill"]["kill_policy"] = json!({"grace_period": {"nanoseconds": ns}});
            }
            if let Err(e) = conn.call(call).await {
                tracing::warn!(error = %e, "KILL not delivered; will retry");
            }
        }
        // Offers may be filtered away after declines: ask again, at most every few seconds.
        if need_offers
            && last_revive.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(5))
        {
            *last_revive = Some(now);
            let _ = conn.call(json!({"type": "REVIVE"})).await;
        }
    }

    /// An app reached its goal: its deployment succeeds; a deleted app goes.
    async fn finish(&self, state: &mut State, app_id: &str) {
        let done: Vec<Deployment> = state
            .deployments
            .values()
            .filter(|d| d.app_id == app_id)
            .cloned()
            .collect();
        let deleted = state.apps.get(app_id).is_some_and(|e| e.deleting);
        // The finished deployments and, for a deleted app, the app go in one transaction.
        let mut writes: Vec<_> = done.iter().map(|d| P::deployment_removal(&d.id)).collect();
        if deleted {
            writes.push(P::app_removal(app_id));
        }
        if let Err(e) = self.persist.apply(writes).await {
            tracing::error!(app = app_id, error = %e, "cannot store a finished deployment; will retry");
            return;
        }
        for d in done {
            state.deployments.remove(&d.id);
            tracing::info!(deployment = %d.id, app = app_id, action = d.action.name(), "deployment finished");
            self.emit("deployment_step_success", json!({"plan": d.to_json(), "currentStep": {"actions": [{"action": d.action.name(), "app": app_id}]}}));
            self.emit(
                "deployment_success",
                json!({"id": d.id, "plan": d.to_json()}),
            );
        }
        if deleted {
            state.apps.remove(app_id);
            self.emit("app_terminated_event", json!({"appId": app_id}));
        }
    }

    /// Applies a health probe's result.
    pub async fn record_health(&self, task_id: &str, check: usize, result: Result<(), String>) {
        let mut state = self.lock().await;
        let Some(inst) = state.instances.get_mut(task_id) else {
            return;
        };
        if inst.health.len() <= check {
            inst.health
                .resize(check + 1, crate::state::Health::default());
        }
        let changed = crate::health::apply(&mut inst.health[check], &result);
        let inst = inst.clone();
        let mut emits = Vec::new();
        health_events(&state, &inst, check, changed, &result, &mut emits);
        for (event, body) in emits {
            self.emit(event, body);
        }
    }
}

/// A Mesos-side check's verdict from a status update, recorded as Marathon's own probes
/// are. Mesos runs one check per task (the first Mesos-side one); its verdict stands for
/// every Mesos-side check of the app (several COMMAND checks are valid), so none of them
/// stays unprobed and holds the app unhealthy for ever.
fn mesos_health(
    state: &State,
    inst: &mut Instance,
    healthy: bool,
    message: &str,
    emits: &mut Vec<(&'static str, Value)>,
) {
    let Some(checks) = state.apps.get(&inst.app_id).map(|e| &e.app.health_checks) else {
        return;
    };
    let indices: Vec<usize> = (0..checks.len())
        .filter(|&i| crate::health::is_mesos_side(&checks[i]))
        .collect();
    if inst.health.len() < checks.len() {
        inst.health.resize(checks.len(), Default::default());
    }
    let result = if healthy {
        Ok(())
    } else if message.is_empty() {
        Err("Mesos health check failed".to_string())
    } else {
        Err(message.to_string())
    };
    for index in indices {
        let changed = crate::health::apply(&mut inst.health[index], &result);
        health_events(state, inst, index, changed, &result, emits);
    }
}

/// The events a health result makes: a change of liveness, a failure.
fn health_events(
    state: &State,
    inst: &Instance,
    check: usize,
    changed: bool,
    result: &Result<(), String>,
    emits: &mut Vec<(&'static str, Value)>,
) {
    let (app_id, task_id, version) = (&inst.app_id, &inst.task_id, &inst.version);
    if changed {
        let alive = result.is_ok();
        emits.push(("health_status_changed_event", json!({"appId": app_id, "taskId": task_id, "instanceId": task_id, "version": version, "alive": alive})));
    }
    if let Err(cause) = result {
        let hc = state
            .apps
            .get(app_id)
            .and_then(|e| e.app.health_checks.get(check));
        emits.push(("failed_health_check_event", json!({"appId": app_id, "taskId": task_id, "instanceId": task_id, "healthCheck": hc, "cause": cause})));
    }
}

/// One app's controller step, with no I/O: marks the instances the planner and failed health
/// checks want killed, and tracks since when launches wait. `None` if the app is gone;
/// otherwise whether it wants offers and whether its deployment is done.
fn control_app(state: &mut State, id: &str, now: Instant, now_secs: f64) -> Option<(bool, bool)> {
    let entry = state.apps.get(id).cloned()?;
    let plan = state.plan(&entry, now, now_secs);
    let waits = plan.launch > 0 || plan.waiting > 0;
    if let Some(e) = state.apps.get_mut(id) {
        if waits {
            e.waiting_since.get_or_insert_with(api::now);
        } else {
            e.waiting_since = None;
        }
    }
    for task in &plan.kill {
        if let Some(i) = state.instances.get_mut(task) {
            i.killing = true;
        }
    }
    // Unhealthy instances past their grace period are replaced.
    for hc_kill in unhealthy(state, &entry.app) {
        if let Some(i) = state.instances.get_mut(&hc_kill) {
            tracing::info!(task_id = %hc_kill, "killing an unhealthy task");
            i.killing = true;
        }
    }
    Some((plan.launch > 0, plan.done))
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

/// A kill grace period in Mesos's nanoseconds, bounded like every delay from a definition
/// (a negative or NaN value from an old record must not reach Mesos).
fn grace_nanos(secs: f64) -> i64 {
    i64::try_from(crate::state::seconds(secs).as_nanos()).unwrap_or(i64::MAX)
}

/// Whether a task that ended in `state` failed (`lastTaskFailure` records it).
fn is_failure(state: &str) -> bool {
    matches!(
        state,
        "TASK_FAILED" | "TASK_ERROR" | "TASK_LOST" | "TASK_DROPPED" | "TASK_GONE" | "TASK_FINISHED"
    )
}

/// Whether a task that ended in `state` for `reason` slows the app's next launches down.
/// As in Marathon, a task lost for a reason that says nothing about the task itself (the
/// master never saw it, or lost its agent) does not.
fn backs_off(state: &str, reason: Option<&str>) -> bool {
    let unseen = matches!(
        reason,
        Some(
            "REASON_RECONCILIATION"
                | "REASON_SLAVE_DISCONNECTED"
                | "REASON_SLAVE_REMOVED"
                | "REASON_AGENT_DISCONNECTED"
                | "REASON_AGENT_REMOVED"
                | "REASON_TASK_UNKNOWN"
        )
    );
    is_failure(state) && !(state == "TASK_LOST" && unseen)
}

/// Instances whose health checks failed too often after their grace period.
fn unhealthy(state: &State, app: &App) -> Vec<String> {
    if app.health_checks.is_empty() {
        return Vec::new();
    }
    let now = std::time::SystemTime::now();
    state
        .instances
        .values()
        .filter(|i| i.app_id == app.id && !i.killing && i.state == "TASK_RUNNING")
        .filter(|i| {
            app.health_checks.iter().enumerate().any(|(n, hc)| {
                // The agent kills a task that fails a Mesos-side check.
                if crate::health::is_mesos_side(hc) {
                    return false;
                }
                let Some(h) = i.health.get(n) else {
                    return false;
                };
                if hc.max_consecutive_failures == 0
                    || h.consecutive_failures < hc.max_consecutive_failures
                {
                    return false;
                }
                // Within the grace period failures only count once the task was healthy.
                let started = i
                    .started_at
                    .as_deref()
                    .and_then(|s| humantime::parse_rfc3339(s).ok())
                    .unwrap_or(now);
                let in_grace = now
                    .duration_since(started)
                    .is_ok_and(|d| d < Duration::from_secs(hc.grace_period_seconds));
                !in_grace || h.first_success.is_some()
            })
        })
        .map(|i| i.task_id.clone())
        .collect()
}

/// The Mesos task name Marathon gives an app's tasks: its path reversed, dot-joined
/// (`/prod/web` -> `web.prod`), which Mesos-DNS turns into `web-prod.marathon.mesos`.
pub fn task_name(app_id: &str) -> String {
    let mut segs: Vec<&str> = app_id.trim_start_matches('/').split('/').collect();
    segs.reverse();
    segs.join(".")
}

/// The TaskInfo for one instance of `app` on an offer, the instance record, and the
/// resources it takes.
fn build_task(
    app: &App,
    agent_id: &str,
    host: &str,
    ports: &[u16],
) -> (Value, Instance, Resources) {
    let task_id = format!("{}.{}", app.task_id_prefix(), uuid::Uuid::new_v4());
    let mut used = Resources {
        cpus: app.cpus,
        mem: app.mem,
        disk: app.disk,
        gpus: f64::from(app.gpus),
        ports: dcos_ports::RangeSet::new(),
    };
    for p in ports {
        used.ports.insert(*p, *p);
    }
    let mut env: Vec<(String, String)> = app
        .env
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect();
    env.extend(dcos_mesos::agent::sandbox::port_env(ports));
    for (i, p) in ports.iter().enumerate() {
        if let Some(service) = app
            .port_definitions
            .get(i)
            .map(|d| d.port)
            .filter(|p| *p != 0)
        {
            env.push((format!("PORT_{service}"), p.to_string()));
        }
        if let Some(name) = app.port_definitions.get(i).and_then(|d| d.name.as_ref()) {
            env.push((
                format!("PORT_{}", dcos_mesos::agent::sandbox::env_name(name)),
                p.to_string(),
            ));
        }
    }
    env.push(("HOST".into(), host.into()));
    env.push(("MARATHON_APP_ID".into(), app.id.clone()));
    env.push(("MARATHON_APP_VERSION".into(), app.version.clone()));
    env.push(("MARATHON_APP_RESOURCE_CPUS".into(), app.cpus.to_string()));
    env.push(("MARATHON_APP_RESOURCE_MEM".into(), app.mem.to_string()));
    env.push(("MARATHON_APP_RESOURCE_DISK".into(), app.disk.to_string()));
    env.push(("MARATHON_APP_RESOURCE_GPUS".into(), app.gpus.to_string()));
    env.push(("MESOS_TASK_ID".into(), task_id.clone()));
    let label_names: Vec<String> = app
        .labels
        .keys()
        .map(|k| {
            k.to_uppercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        })
        .collect();
    env.push(("MARATHON_APP_LABELS".into(), label_names.join(" ")));
    for ((_, v), name) in app.labels.iter().zip(&label_names) {
        env.push((format!("MARATHON_APP_LABEL_{name}"), v.clone()));
    }
    let variables: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let uris: Vec<Value> = app
        .fetch
        .iter()
        .map(|f| {
            let mut u = json!({"value": f.uri, "executable": f.executable, "extract": f.extract, "cache": f.cache});
            if let Some(d) = &f.dest_path {
                u["output_file"] = json!(d);
            }
            u
        })
        .collect();
    let mut command = match (&app.cmd, &app.args) {
        (Some(cmd), _) => json!({"value": cmd, "shell": true}),
        (None, Some(args)) => json!({"value": args.first(), "arguments": args, "shell": false}),
        (None, None) => json!({"shell": false}),
    };
    command["environment"] = json!({"variables": variables});
    command["uris"] = json!(uris);
    if let Some(user) = &app.user {
        command["user"] = json!(user);
    }
    let name = task_name(&app.id);
    let discovery_ports: Vec<Value> = app
        .port_definitions
        .iter()
        .zip(ports)
        .map(|(pd, p)| {
            let mut v = json!({"number": p, "protocol": pd.protocol});
            if let Some(n) = &pd.name {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    let mut resources = used.clone();
    resources.ports = dcos_ports::RangeSet::new();
    let mut res = serde_json::to_value(resources.to_api(None)).unwrap_or_else(|_| json!([]));
    if !ports.is_empty() {
        if let Some(list) = res.as_array_mut() {
            list.push(json!({"name": "ports", "type": "RANGES", "role": "*", "ranges": {"range": ports.iter().map(|p| json!({"begin": p, "end": p})).collect::<Vec<_>>()}}));
        }
    }
    let mut task = json!({
        "name": name,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": res,
        "command": command,
        "discovery": {"visibility": "FRAMEWORK", "name": name, "ports": {"ports": discovery_ports}},
        "labels": {"labels": app.labels.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()},
    });
    if let Some(secs) = app.task_kill_grace_period_seconds {
        task["kill_policy"] = json!({"grace_period": {"nanoseconds": grace_nanos(secs)}});
    }
    if let Some(container) = app.container.as_ref() {
        task["container"] = container_info(container);
    }
    // Marathon gives Mesos the first Mesos-side check (validation allows only one); its
    // verdicts are recorded as that check's (`mesos_health`).
    if let Some(check) = app
        .health_checks
        .iter()
        .find(|hc| crate::health::is_mesos_side(hc))
        .and_then(|hc| crate::health::to_mesos(hc, ports))
    {
        task["health_check"] = check;
    }
    let instance = Instance {
        task_id,
        app_id: app.id.clone(),
        version: app.version.clone(),
        config_version: app.version_info.last_config_change_at.clone(),
        agent_id: agent_id.into(),
        host: host.into(),
        ports: ports.to_vec(),
        state: "TASK_STAGING".into(),
        staged_at: api::now(),
        started_at: None,
        killing: false,
        unreachable_since: None,
        health: Vec::new(),
    };
    (task, instance, used)
}

/// The Mesos `ContainerInfo` of an app's (validated) container, as Marathon 1.6 builds it: a
/// `MESOS` container names its image as a Docker image for the Mesos containerizer (cached
/// unless `forcePullImage`), a `DOCKER` container keeps Docker's form (the agents run it on
/// the Mesos containerizer too); host volumes are mounted as given.
pub(crate) fn container_info(c: &Value) -> Value {
    let docker = c.get("docker").unwrap_or(&Value::Null);
    let image = docker.get("image").and_then(Value::as_str);
    let force = docker
        .get("forcePullImage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let volumes: Vec<Value> = c
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| {
            json!({
                "container_path": v["containerPath"],
                "host_path": v["hostPath"],
                "mode": v.get("mode").and_then(Value::as_str).unwrap_or("RW"),
            })
        })
        .collect();
    if c.get("type").and_then(Value::as_str) == Some("MESOS") {
        let mut info = json!({"type": "MESOS", "volumes": volumes});
        if let Some(image) = image {
            let mut docker_image = json!({"name": image});
            if let Some(cred) = docker.get("credential") {
                docker_image["credential"] =
                    json!({"principal": cred["principal"], "secret": cred["secret"]});
            }
            info["mesos"] =
                json!({"image": {"type": "DOCKER", "docker": docker_image, "cached": !force}});
        }
        return info;
    }
    json!({
        "type": "DOCKER",
        "docker": {"image": image, "network": "HOST", "force_pull_image": force},
        "volumes": volumes,
    })
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
    fn only_failures_of_the_task_itself_back_off() {
        for state in ["TASK_FAILED", "TASK_ERROR", "TASK_FINISHED", "TASK_DROPPED"] {
            assert!(backs_off(state, None), "{state}");
        }
        assert!(backs_off("TASK_LOST", Some("REASON_EXECUTOR_TERMINATED")));
        assert!(backs_off("TASK_LOST", None));
        // An ACCEPT the master never saw, or a lost agent: launch again at once.
        assert!(!backs_off("TASK_LOST", Some("REASON_RECONCILIATION")));
        assert!(!backs_off("TASK_LOST", Some("REASON_SLAVE_REMOVED")));
        assert!(!backs_off("TASK_LOST", Some("REASON_AGENT_REMOVED")));
        // Still a failure the app's lastTaskFailure shows.
        assert!(is_failure("TASK_LOST"));
        for state in ["TASK_KILLED", "TASK_RUNNING", "TASK_UNREACHABLE"] {
            assert!(!backs_off(state, None), "{state}");
        }
    }

    #[test]
    fn task_names_reverse_the_app_path() {
        assert_eq!(task_name("/web"), "web");
        assert_eq!(task_name("/prod/web"), "web.prod");
    }

    #[test]
    fn tasks_carry_marathon_environment_and_their_ports() {
        let mut app = App::with_defaults("/g/web".into());
        app.cmd = Some("run".into());
        app.version = "v1".into();
        app.port_definitions[0].name = Some("http".into());
        app.port_definitions[0].port = 10001;
        app.labels.insert("tier".into(), "front".into());
        let (task, inst, used) = build_task(&app, "A1", "10.0.0.2", &[31002]);
        assert!(inst.task_id.starts_with("g_web."));
        assert_eq!(task["name"], "web.g");
        assert!(used.ports.contains(31002));
        let vars = task["command"]["environment"]["variables"]
            .as_array()
            .unwrap();
        let get = |k: &str| {
            vars.iter()
                .find(|v| v["name"] == k)
                .map(|v| v["value"].as_str().unwrap().to_string())
        };
        assert_eq!(get("PORT0").as_deref(), Some("31002"));
        assert_eq!(get("PORT_HTTP").as_deref(), Some("31002"));
        assert_eq!(get("PORT_10001").as_deref(), Some("31002"));
        assert_eq!(get("MARATHON_APP_ID").as_deref(), Some("/g/web"));
        assert_eq!(get("MARATHON_APP_LABEL_TIER").as_deref(), Some("front"));
        assert_eq!(get("MESOS_TASK_ID"), Some(inst.task_id));
        assert!(task["command"].get("user").is_none());
    }

    #[test]
    fn the_app_user_runs_the_task_and_grace_periods_are_bounded() {
        let mut app = App::with_defaults("/web".into());
        app.cmd = Some("run".into());
        app.user = Some("nobody".into());
        app.task_kill_grace_period_seconds = Some(1e20);
        let (task, _, _) = build_task(&app, "A1", "h", &[]);
        assert_eq!(task["command"]["user"], "nobody");
        let max = i64::try_from(crate::state::MAX_DELAY.as_nanos()).unwrap();
        assert_eq!(task["kill_policy"]["grace_period"]["nanoseconds"], max);
        assert_eq!(grace_nanos(-1.0), 0);
        assert_eq!(grace_nanos(f64::NAN), 0);
        assert_eq!(grace_nanos(2.5), 2_500_000_000);
    }

    #[test]
    fn a_panicking_app_step_is_skipped_not_fatal() {
        assert_eq!(isolated("/ok", "test", || 7), Some(7));
        let r: Option<()> = isolated("/bad", "test", || panic!("an app's bug"));
        assert_eq!(r, None);
        // The scheduler's own steps, on an app no longer validated (an old record):
        let mut app = App::with_defaults("/old".into());
        app.backoff_seconds = 1e20;
        app.max_launch_delay_seconds = 1e20;
        app.health_checks =
            vec![serde_json::from_value(json!({"intervalSeconds": u64::MAX})).unwrap()];
        let mut state = State::default();
        state.apps.insert(
            app.id.clone(),
            AppEntry::new(app.clone(), BTreeMap::new(), false),
        );
        let (task, inst, _) = build_task(&app, "A1", "h", &[]);
        state.instances.insert(inst.task_id.clone(), inst.clone());
        let failed = json!({"task_id": task["task_id"], "agent_id": {"value": "A1"}, "state": "TASK_FAILED"});
        let (mut writes, mut emits) = (Vec::new(), Vec::new());
        let applied = isolated(&app.id, "status update", || {
            Marathon::apply_update(&mut state, &failed, &mut writes, &mut emits)
        });
        assert!(applied.is_some(), "a failure of the app panicked");
        let (left, ready) = state.apps[&app.id].backoff.left(Instant::now());
        assert!(!ready && left > 3600, "{left}");
        assert!(control_app(&mut state, &app.id, Instant::now(), 0.0).is_some());
    }
}
