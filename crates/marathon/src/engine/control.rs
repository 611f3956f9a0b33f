//! The scheduler loop: the subscription to a master, its events (offers, status updates),
//! reconciliation, and the controller pass that kills what the planner and failed health
//! checks want killed, ends finished deployments and expunges instances long unreachable.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dcos_mesos_api::api::{DurationInfo, FrameworkInfo, Id, KillPolicy};
use dcos_mesos_api::scheduler::{
    self, CallBody, Connection, Event, Events, Kill, Offer, Operation, Reconcile, ReconcileTask,
};
use dcos_store::Write;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::launch::grace_nanos;
use super::matching::{declined, match_offers, LaunchQueue, Matched};
use super::{isolated, Emits, Marathon, CALLS_IN_FLIGHT, P, UPDATE_BATCH};
use crate::api::{self, App};
use crate::state::{Deployment, State};

/// Marathon's default framework failover timeout: one week.
const FAILOVER_TIMEOUT_SECS: f64 = 604_800.0;
/// How often the controller looks at every app.
const TICK: Duration = Duration::from_millis(250);
/// A KILL not answered within this is sent again.
const KILL_RETRY: Duration = Duration::from_secs(10);
/// How often every task is reconciled (Marathon's `reconciliation_interval`).
const RECONCILE_INTERVAL: Duration = Duration::from_secs(600);
/// REVIVE at most this often.
const REVIVE_EVERY: Duration = Duration::from_secs(5);

/// The loop's own bookkeeping of calls it repeats.
struct Pacing {
    /// When each kill was last sent.
    kills_sent: HashMap<String, Instant>,
    last_revive: Option<Instant>,
    last_reconcile: Instant,
}

impl Pacing {
    fn new() -> Pacing {
        Pacing {
            kills_sent: HashMap::new(),
            last_revive: None,
            last_reconcile: Instant::now(),
        }
    }

    /// A new subscription was just reconciled, and its master knows of no kill sent.
    fn subscribed(&mut self) {
        self.last_reconcile = Instant::now();
        self.kills_sent.clear();
    }
}

/// Which master to subscribe at next, and how long to wait after a failure.
struct Subscriber {
    next_master: usize,
    backoff: Duration,
}

const SUBSCRIBE_BACKOFF: Duration = Duration::from_millis(200);

impl Marathon {
    /// Keeps subscribed to a master and drives apps until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut pacing = Pacing::new();
        let mut subscriber = Subscriber {
            next_master: 0,
            backoff: SUBSCRIBE_BACKOFF,
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let Some(mut events) = self.subscribe(&mut subscriber, &shutdown).await else {
                return;
            };
            pacing.subscribed();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.next() => {
                        if let Err(e) = self.on_burst(event, &mut events).await {
                            tracing::warn!(error = %e, "lost the Mesos master; re-subscribing");
                            // Calls wait for the next connection.
                            *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = None;
                            break;
                        }
                    }
                    _ = tick.tick() => self.tick(&mut pacing).await,
                }
            }
        }
    }

    /// Subscribes at the masters in turn until one answers; None on `shutdown` (or with no
    /// master to ask).
    async fn subscribe(
        &self,
        sub: &mut Subscriber,
        shutdown: &CancellationToken,
    ) -> Option<Events> {
        loop {
            let masters = &self.settings.masters;
            if masters.is_empty() {
                tracing::error!("no Mesos masters configured");
                return None;
            }
            let master = masters[sub.next_master % masters.len()];
            sub.next_master += 1;
            let info = self.framework_info().await;
            let subscribed = tokio::select! {
                _ = shutdown.cancelled() => return None,
                r = self.subscribe_at(master, &info) => r,
            };
            match subscribed {
                Ok((conn, events, _)) => {
                    if self.on_subscribed(conn).await {
                        sub.backoff = SUBSCRIBE_BACKOFF;
                        return Some(events);
                    }
                    // The id is not stored: dropping the stream and subscribing again (with
                    // the same framework info) is better than a framework a restart forgets.
                    drop(events);
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(sub.backoff) => {}
                    }
                    sub.backoff = (sub.backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::warn!(%master, error = %e, "cannot subscribe to the Mesos master; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(sub.backoff) => {}
                    }
                    sub.backoff = (sub.backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One SUBSCRIBE at `master`, with a client of its own (carrying a fresh token of
    /// Marathon's service account in strict security).
    async fn subscribe_at(
        &self,
        master: std::net::SocketAddr,
        info: &FrameworkInfo,
    ) -> Result<(Connection, Events, scheduler::Subscribed), String> {
        let client = dcos_iam::client::framework_client(self.settings.login.as_ref()).await?;
        scheduler::subscribe(&client, master, info)
            .await
            .map_err(|e| e.to_string())
    }

    /// An event and what else has arrived already (a burst of status updates is stored in
    /// one write). An error when the stream broke.
    async fn on_burst(
        &self,
        first: Result<Event, scheduler::Error>,
        events: &mut Events,
    ) -> Result<(), scheduler::Error> {
        let mut batch = vec![first?];
        let mut lost = None;
        while batch.len() < UPDATE_BATCH {
            match events.next().now_or_never() {
                Some(Ok(more)) => batch.push(more),
                Some(Err(e)) => {
                    lost = Some(e);
                    break;
                }
                None => break,
            }
        }
        self.on_events(batch).await;
        lost.map_or(Ok(()), Err)
    }

    /// One controller pass, and reconciliation when it is due.
    async fn tick(&self, pacing: &mut Pacing) {
        self.control(pacing).await;
        if pacing.last_reconcile.elapsed() >= RECONCILE_INTERVAL {
            if let Some(conn) = self.connection() {
                self.reconcile(&conn).await;
            }
            pacing.last_reconcile = Instant::now();
        }
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

    /// Takes a new subscription into use; false when its framework id could not be stored.
    async fn on_subscribed(&self, conn: Connection) -> bool {
        tracing::info!(master = %conn.master, framework_id = %conn.framework_id, "subscribed to the Mesos master");
        let id = conn.framework_id.value.clone();
        {
            let _turn = self.changes.lock().await;
            let known = self.lock().await.framework_id.as_deref() == Some(id.as_str());
            if !known {
                if let Err(e) = self.persist.save_framework_id(&id).await {
                    tracing::error!(error = %e, "cannot store the framework id; subscribing again");
                    return false;
                }
                self.lock().await.framework_id = Some(id);
            }
        }
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        self.reconcile(&conn).await;
        self.emit("framework_message_event", json!({"message": "subscribed"}));
        true
    }

    /// Explicit reconciliation of every known task (unknown ones come back TASK_LOST), then
    /// implicit reconciliation. On every subscription, and every `RECONCILE_INTERVAL`, as
    /// Marathon: an instance whose launch was lost on the way is found and launched again.
    async fn reconcile(&self, conn: &Connection) {
        let tasks = self
            .lock()
            .await
            .instances
            .values()
            .map(|i| ReconcileTask {
                task_id: Id::new(i.task_id.clone()),
                agent_id: Some(Id::new(i.agent_id.clone())),
            })
            .collect();
        let _ = conn.call(CallBody::Reconcile(Reconcile { tasks })).await;
        let _ = conn.call(CallBody::Reconcile(Reconcile::default())).await;
    }

    /// Events in order; runs of status updates are handled together.
    async fn on_events(&self, events: Vec<Event>) {
        let mut updates = Vec::new();
        for event in events {
            if let Event::Update(update) = event {
                updates.push(update.status);
                continue;
            }
            if !updates.is_empty() {
                self.on_updates(std::mem::take(&mut updates)).await;
            }
            match event {
                Event::Offers(offers) => self.on_offers(offers.offers).await,
                Event::Error(e) => {
                    tracing::error!(message = %e.message, "the master reported an error")
                }
                Event::Failure(f) => tracing::warn!(failure = ?f, "executor or agent failure"),
                _ => {}
            }
        }
        if !updates.is_empty() {
            self.on_updates(updates).await;
        }
    }

    /// Matches offers against the apps waiting for launches; every new instance of the batch
    /// is stored in one write before any is launched (a restarted Marathon knows each task it
    /// may have started), then every offer is answered.
    async fn on_offers(&self, offers: Vec<Offer>) {
        let Some(conn) = self.connection() else {
            return;
        };
        let calls = {
            let _turn = self.changes.lock().await;
            let matched = {
                let mut state = self.lock().await;
                let now_secs = dcos_mesos_api::api::now_secs();
                let mut queue = LaunchQueue::of(&state, Instant::now(), now_secs);
                let matched = match_offers(&offers, &mut queue);
                let at = api::now();
                for v in &matched.verdicts {
                    if let Some(e) = state.apps.get_mut(&v.app_id) {
                        e.offers.record(&v.agent_id, &v.result, &at);
                    }
                }
                matched
            };
            self.store_launches(matched).await
        };
        answer_offers(&conn, calls).await;
    }

    /// Stores the instances of a match and makes them current; the answers to send (an
    /// ACCEPT whose instances could not be stored declines instead).
    async fn store_launches(&self, matched: Matched) -> Vec<CallBody> {
        let Matched {
            calls, instances, ..
        } = matched;
        let writes: Result<Vec<_>, _> = instances.iter().map(P::instance_write).collect();
        let stored = match writes {
            Ok(writes) => self.persist.apply(writes).await,
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, "cannot store the new instances; not launching them");
            return calls.into_iter().map(declined).collect();
        }
        if !instances.is_empty() {
            tracing::info!(tasks = instances.len(), "launching tasks");
        }
        let mut state = self.lock().await;
        for i in instances {
            state.instances.insert(i.task_id.clone(), i);
        }
        calls
    }

    /// One controller pass: planned under the state lock (kills the planner and health checks
    /// ask for, finished deployments, expunged instances), its writes stored in one
    /// transaction, then applied; the kills due go out last.
    async fn control(&self, pacing: &mut Pacing) {
        let now = Instant::now();
        let now_secs = dcos_mesos_api::api::now_secs();
        let mut emits = Vec::new();
        let (kills, need_offers) = {
            let _turn = self.changes.lock().await;
            let plan = plan_control(&mut *self.lock().await, now, now_secs);
            let stored = match self.persist.apply(plan.writes()).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "cannot store finished deployments or expunged instances; will retry");
                    false
                }
            };
            let need_offers = plan.need_offers;
            let mut state = self.lock().await;
            if stored {
                plan.apply(&mut state, pacing, &mut emits);
            }
            (due_kills(&state, pacing, now), need_offers)
        };
        self.emit_all(emits);
        let Some(conn) = self.connection() else {
            return;
        };
        for kill in kills {
            pacing.kills_sent.insert(kill.task_id.value.clone(), now);
            if let Err(e) = conn.call(CallBody::Kill(kill)).await {
                tracing::warn!(error = %e, "KILL not delivered; will retry");
            }
        }
        // Offers may be filtered away after declines: ask again, at most every few seconds.
        if need_offers
            && pacing
                .last_revive
                .is_none_or(|at| now.duration_since(at) >= REVIVE_EVERY)
        {
            pacing.last_revive = Some(now);
            let _ = conn.call(CallBody::Revive).await;
        }
    }
}

/// Sends the answers to a batch of offers, several at a time (they are independent).
async fn answer_offers(conn: &Connection, calls: Vec<CallBody>) {
    futures::stream::iter(calls)
        .for_each_concurrent(CALLS_IN_FLIGHT, |call| async move {
            let launched = launched_tasks(&call);
            let Err(e) = conn.call(call).await else { return };
            tracing::warn!(error = %e, "offer answer not delivered");
            // An ACCEPT that timed out may or may not have reached the master: ask for its
            // tasks. The master answers TASK_LOST for the ones it never launched, and they
            // are launched again.
            if !launched.is_empty() {
                let reconcile = CallBody::Reconcile(Reconcile { tasks: launched });
                if let Err(e) = conn.call(reconcile).await {
                    tracing::warn!(error = %e, "cannot reconcile the tasks of an undelivered offer answer");
                }
            }
        })
        .await;
}

/// The tasks an ACCEPT launches, as a RECONCILE names them.
fn launched_tasks(call: &CallBody) -> Vec<ReconcileTask> {
    let CallBody::Accept(accept) = call else {
        return Vec::new();
    };
    let launches = accept.operations.iter().filter_map(|op| match op {
        Operation::Launch(launch) => Some(&launch.task_infos),
        _ => None,
    });
    launches
        .flatten()
        .map(|t| ReconcileTask {
            task_id: t.task_id.clone(),
            agent_id: Some(t.agent_id.clone()),
        })
        .collect()
}

/// An app that reached its goal: its deployments end; a deleted app goes.
#[derive(Debug)]
struct Finished {
    app_id: String,
    deployments: Vec<Deployment>,
    deleted: bool,
}

/// What one controller pass stores and applies.
#[derive(Debug, Default)]
struct ControlPlan {
    /// Some app wants launches.
    need_offers: bool,
    finished: Vec<Finished>,
    /// Unreachable instances past `expungeAfterSeconds`, to forget.
    expunge: Vec<String>,
}

/// Plans a controller pass. Kills are marked on the instances at once (they are not
/// stored); what is stored is returned.
fn plan_control(state: &mut State, now: Instant, now_secs: f64) -> ControlPlan {
    let mut plan = ControlPlan::default();
    let ids: Vec<String> = state.apps.keys().cloned().collect();
    for id in ids {
        let step = isolated(&id, "control", || control_app(state, &id, now, now_secs));
        let Some(Some((wants_offers, done))) = step else {
            continue;
        };
        plan.need_offers |= wants_offers;
        if !done {
            continue;
        }
        let deployments: Vec<Deployment> = state
            .deployments
            .values()
            .filter(|d| d.app_id == id)
            .cloned()
            .collect();
        let deleted = state.apps.get(&id).is_some_and(|e| e.deleting);
        if !deployments.is_empty() || deleted {
            plan.finished.push(Finished {
                app_id: id,
                deployments,
                deleted,
            });
        }
    }
    plan.expunge = state
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
    plan
}

impl ControlPlan {
    /// The finished deployments, deleted apps and expunged instances, for one transaction.
    fn writes(&self) -> Vec<Write> {
        let mut writes = Vec::new();
        for f in &self.finished {
            writes.extend(f.deployments.iter().map(|d| P::deployment_removal(&d.id)));
            if f.deleted {
                writes.push(P::app_removal(&f.app_id));
            }
        }
        writes.extend(self.expunge.iter().map(|id| P::instance_removal(id)));
        writes
    }

    /// Makes the stored pass current.
    fn apply(self, state: &mut State, pacing: &mut Pacing, emits: &mut Emits) {
        for f in self.finished {
            let app_id = f.app_id.as_str();
            for d in f.deployments {
                state.deployments.remove(&d.id);
                let action = d.action.name();
                tracing::info!(deployment = %d.id, app = app_id, action, "deployment finished");
                emits.push(("deployment_step_success", json!({"plan": d.to_json(), "currentStep": {"actions": [{"action": action, "app": app_id}]}})));
                emits.push((
                    "deployment_success",
                    json!({"id": d.id, "plan": d.to_json()}),
                ));
            }
            if f.deleted {
                state.apps.remove(app_id);
                emits.push(("app_terminated_event", json!({"appId": app_id})));
            }
        }
        for id in self.expunge {
            state.instances.remove(&id);
            pacing.kills_sent.remove(&id);
        }
    }
}

/// The kills to send now: instances marked for killing, not yet ended, whose kill was not
/// sent within `KILL_RETRY`.
fn due_kills(state: &State, pacing: &mut Pacing, now: Instant) -> Vec<Kill> {
    pacing
        .kills_sent
        .retain(|id, _| state.instances.contains_key(id));
    let killing = state.instances.values().filter(|i| i.killing);
    killing
        .filter(|i| !i.state.is_terminal())
        .filter(|i| {
            let sent = pacing.kills_sent.get(&i.task_id);
            sent.is_none_or(|at| now.duration_since(*at) >= KILL_RETRY)
        })
        .map(|i| {
            let grace = state
                .apps
                .get(&i.app_id)
                .and_then(|e| e.app.task_kill_grace_period_seconds);
            Kill {
                task_id: Id::new(i.task_id.clone()),
                agent_id: Some(Id::new(i.agent_id.clone())),
                kill_policy: grace.map(|secs| KillPolicy {
                    grace_period: Some(DurationInfo {
                        nanoseconds: grace_nanos(secs),
                    }),
                }),
            }
        })
        .collect()
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

/// Instances whose health checks failed too often after their grace period.
fn unhealthy(state: &State, app: &App) -> Vec<String> {
    if app.health_checks.is_empty() {
        return Vec::new();
    }
    let now = std::time::SystemTime::now();
    let running = state.instances.values().filter(|i| {
        i.app_id == app.id && !i.killing && i.state == dcos_mesos_api::api::TaskState::Running
    });
    running
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::launch::build_task;
    use crate::state::{Action, AppEntry};
    use dcos_mesos_api::api::TaskState;
    use std::collections::BTreeMap;

    fn state_with(app: &App) -> State {
        let mut s = State::default();
        let entry = AppEntry::new(app.clone(), BTreeMap::new(), false);
        s.apps.insert(app.id.clone(), entry);
        s
    }

    #[test]
    fn a_converged_app_finishes_its_deployment_and_a_deleted_one_goes() {
        let mut app = App::with_defaults("/web".into());
        app.instances = 0;
        let mut state = state_with(&app);
        let d = Deployment {
            id: "d1".into(),
            version: "v".into(),
            app_id: "/web".into(),
            action: Action::StopApplication,
            original: None,
        };
        state.deployments.insert(d.id.clone(), d);
        state.apps.get_mut("/web").unwrap().deleting = true;
        let plan = plan_control(&mut state, Instant::now(), 0.0);
        assert_eq!(
            plan.writes(),
            vec![P::deployment_removal("d1"), P::app_removal("/web")]
        );
        assert!(state.apps.contains_key("/web"), "planning removed it");
        let (mut pacing, mut emits) = (Pacing::new(), Vec::new());
        plan.apply(&mut state, &mut pacing, &mut emits);
        assert!(state.apps.is_empty() && state.deployments.is_empty());
        let kinds: Vec<_> = emits.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                "deployment_step_success",
                "deployment_success",
                "app_terminated_event"
            ]
        );
        // Nothing left to do: nothing to write.
        assert!(plan_control(&mut state, Instant::now(), 0.0)
            .writes()
            .is_empty());
    }

    #[test]
    fn surplus_instances_are_marked_and_their_kills_paced() {
        let mut app = App::with_defaults("/web".into());
        app.instances = 0;
        app.task_kill_grace_period_seconds = Some(2.0);
        let mut state = state_with(&app);
        let (_, mut inst, _) = build_task(&app, "A1", "h", &[]);
        inst.state = TaskState::Running;
        state.instances.insert(inst.task_id.clone(), inst.clone());
        let plan = plan_control(&mut state, Instant::now(), 0.0);
        assert!(plan.writes().is_empty());
        assert!(state.instances[&inst.task_id].killing);
        let mut pacing = Pacing::new();
        let now = Instant::now();
        let kills = due_kills(&state, &mut pacing, now);
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].task_id.value, inst.task_id);
        let grace = kills[0]
            .kill_policy
            .as_ref()
            .and_then(|k| k.grace_period.clone());
        assert_eq!(grace.map(|g| g.nanoseconds), Some(2_000_000_000));
        pacing.kills_sent.insert(inst.task_id.clone(), now);
        assert!(due_kills(&state, &mut pacing, now).is_empty());
        assert_eq!(due_kills(&state, &mut pacing, now + KILL_RETRY).len(), 1);
    }

    #[test]
    fn instances_unreachable_too_long_are_expunged() {
        let mut app = App::with_defaults("/web".into());
        app.unreachable_strategy.expunge_after_seconds = 60;
        let mut state = state_with(&app);
        let (_, mut inst, _) = build_task(&app, "A1", "h", &[]);
        inst.state = TaskState::Unreachable;
        inst.unreachable_since = Some(1000.0);
        state.instances.insert(inst.task_id.clone(), inst.clone());
        assert!(plan_control(&mut state, Instant::now(), 1059.0)
            .expunge
            .is_empty());
        let plan = plan_control(&mut state, Instant::now(), 1060.0);
        assert_eq!(plan.writes(), vec![P::instance_removal(&inst.task_id)]);
    }

    #[test]
    fn undelivered_accepts_name_their_tasks_for_reconciliation() {
        let app = App::with_defaults("/web".into());
        let (task, _, _) = build_task(&app, "A1", "h", &[]);
        let accept = CallBody::Accept(scheduler::Accept {
            offer_ids: vec![Id::new("o1")],
            operations: vec![Operation::launch(vec![task.clone()])],
            filters: None,
        });
        let tasks = launched_tasks(&accept);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].task_id, task.task_id);
        assert_eq!(tasks[0].agent_id, Some(Id::new("A1")));
        assert!(launched_tasks(&CallBody::Revive).is_empty());
    }

    #[test]
    fn control_survives_an_app_with_unbounded_values() {
        let mut app = App::with_defaults("/old".into());
        app.backoff_seconds = 1e20;
        app.max_launch_delay_seconds = 1e20;
        app.health_checks =
            vec![serde_json::from_value(json!({"intervalSeconds": u64::MAX})).unwrap()];
        let mut state = state_with(&app);
        assert!(control_app(&mut state, &app.id, Instant::now(), 0.0).is_some());
    }
}
