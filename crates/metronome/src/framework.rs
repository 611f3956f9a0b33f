//! Metronome as a framework of the Mesos master, through `mesos-api`'s scheduler client: the
//! subscription (re-subscribing with the stored framework id after a failover), offers
//! matched against the queued runs, status updates moving runs, reconciliation, and a tick
//! that aborts runs past their starting deadline and revives offers for queued runs.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dcos_mesos_api::api::{
    CommandInfo, DurationInfo, Environment, Filters, FrameworkInfo, Id, KillPolicy, TaskInfo,
    TaskStatus, Uri, Variable,
};
use dcos_mesos_api::container::{mesos_image, HostVolume};
use dcos_mesos_api::resources::Resources;
use dcos_mesos_api::scheduler::{
    self, Accept, Acknowledge, CallBody, Decline, Event, Events, Offer, Operation, Reconcile,
    ReconcileTask,
};
use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::api::{EnvValue, Mode, Operator};
use crate::engine::Metronome;
use crate::state::{task_id, Run, State};

/// Metronome's framework failover timeout: a week, as Marathon's.
const FAILOVER_TIMEOUT_SECS: f64 = 604_800.0;
/// How often deadlines and the queue are looked at.
const TICK: Duration = Duration::from_millis(500);
/// Runs queued within this are revived for with one REVIVE.
const REVIVE_COALESCE: Duration = Duration::from_millis(50);
/// REVIVE at most this often from the tick.
const REVIVE_EVERY: Duration = Duration::from_secs(5);
/// Offers declined while runs wait come back after this.
const REFUSE_BUSY: f64 = 5.0;
/// Offers declined with nothing to launch come back after this (a new run revives).
const REFUSE_IDLE: f64 = 120.0;
/// Status updates handled (and stored) together at most.
const UPDATE_BATCH: usize = 1024;
/// Calls to the master sent at once.
const CALLS_IN_FLIGHT: usize = 32;
/// The back-off between failed subscriptions, doubling to 5 s.
const SUBSCRIBE_BACKOFF: Duration = Duration::from_millis(200);

impl Metronome {
    /// One SUBSCRIBE at `master`, with a client of its own (carrying a fresh token of
    /// Metronome's service account in strict security).
    async fn subscribe_at(
        &self,
        master: std::net::SocketAddr,
        info: &dcos_mesos_api::api::FrameworkInfo,
    ) -> Result<
        (
            scheduler::Connection,
            scheduler::Events,
            scheduler::Subscribed,
        ),
        String,
    > {
        let client = dcos_iam::client::framework_client(self.settings().login.as_ref()).await?;
        scheduler::subscribe(&client, master, info)
            .await
            .map_err(|e| e.to_string())
    }

    /// Keeps subscribed to a master and drives runs until `shutdown`.
    pub async fn run_framework(self, shutdown: CancellationToken) {
        let mut next_master = 0usize;
        let mut backoff = SUBSCRIBE_BACKOFF;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut revive_tick = tokio::time::interval(REVIVE_COALESCE);
        revive_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_revive: Option<Instant> = None;
        let mut was_waiting = false;
        loop {
            let masters = self.settings().masters.clone();
            if masters.is_empty() {
                tracing::error!("no Mesos masters configured");
                shutdown.cancelled().await;
                return;
            }
            let master = masters[next_master % masters.len()];
            next_master += 1;
            let info = self.framework_info().await;
            let subscribed = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.subscribe_at(master, &info) => r,
            };
            let mut events = match subscribed {
                Ok((conn, events, _)) => {
                    backoff = SUBSCRIBE_BACKOFF;
                    self.on_subscribed(conn).await;
                    events
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
            };
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.next() => {
                        if let Err(e) = self.on_burst(event, &mut events).await {
                            tracing::warn!(error = %e, "lost the Mesos master; re-subscribing");
                            self.set_connection(None);
                            break;
                        }
                    }
                    _ = revive_tick.tick() => {
                        if self.take_revive() {
                            if let Some(conn) = self.connection() {
                                if let Err(e) = conn.call(CallBody::Revive).await {
                                    tracing::warn!(error = %e, "REVIVE not delivered");
                                }
                            }
                        }
                    }
                    _ = tick.tick() => {
                        // A run whose back-off just ended revives at once; one that keeps
                        // waiting (no room anywhere) every few seconds.
                        let waiting = self.deadlines().await;
                        let due = !was_waiting || last_revive.is_none_or(|t| t.elapsed() >= REVIVE_EVERY);
                        if waiting && due {
                            last_revive = Some(Instant::now());
                            self.revive();
                        }
                        was_waiting = waiting;
                    }
                }
            }
        }
    }

    async fn framework_info(&self) -> FrameworkInfo {
        let id = self.lock().await.framework_id.clone();
        let s = self.settings();
        FrameworkInfo {
            user: "root".into(),
            name: s.framework_name.clone(),
            id: id.map(Id::new),
            failover_timeout: Some(FAILOVER_TIMEOUT_SECS),
            checkpoint: Some(true),
            role: Some("*".into()),
            hostname: Some(s.hostname.clone()),
            webui_url: Some(s.webui_url.clone()),
            capabilities: vec![json!({"type": "TASK_KILLING_STATE"})],
            ..FrameworkInfo::default()
        }
    }

    async fn on_subscribed(&self, conn: scheduler::Connection) {
        tracing::info!(master = %conn.master, framework_id = %conn.framework_id, "subscribed to the Mesos master");
        let id = conn.framework_id.value.clone();
        let stored = self
            .change(|state, _, d| {
                if state.framework_id.as_deref() != Some(id.as_str()) {
                    d.framework_id(id.clone());
                }
                Ok(())
            })
            .await;
        if let Err(e) = stored {
            tracing::error!(error = ?e, "cannot store the framework id");
        }
        self.set_connection(Some(conn.clone()));
        // Explicit reconciliation of every task a run may still have (the master answers
        // TASK_LOST for those it does not know, and the run's policy decides), then implicit.
        let tasks = self
            .live_tasks()
            .await
            .into_iter()
            .map(|t| ReconcileTask {
                task_id: Id::new(t.id),
                agent_id: Some(Id::new(t.agent_id)),
            })
            .collect();
        let _ = conn.call(CallBody::Reconcile(Reconcile { tasks })).await;
        let _ = conn.call(CallBody::Reconcile(Reconcile::default())).await;
        self.revive();
    }

    /// An event and whatever else has already arrived (a burst of updates is one write).
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
        let mut updates = Vec::new();
        for event in batch {
            if let Event::Update(u) = event {
                updates.push(u.status);
                continue;
            }
            if !updates.is_empty() {
                self.on_updates(std::mem::take(&mut updates)).await;
            }
            match event {
                Event::Offers(o) => self.on_offers(o.offers).await,
                Event::Error(e) => {
                    tracing::error!(message = %e.message, "the master reported an error")
                }
                _ => {}
            }
        }
        if !updates.is_empty() {
            self.on_updates(updates).await;
        }
        lost.map_or(Ok(()), Err)
    }

    /// Moves runs by a batch of status updates, stored in one write, then acknowledged.
    async fn on_updates(&self, statuses: Vec<TaskStatus>) {
        let keep = self.settings().history_count;
        let t0 = Instant::now();
        let n = statuses.len();
        let stored = self
            .change_lazily(|state, now, d| {
                for st in &statuses {
                    let Some(key) = crate::state::run_of_task(st.task_id.as_str()) else {
                        continue;
                    };
                    let Some(mut run) = d.run(state, &key) else {
                        // A task of no active run (its run was stopped or its job deleted):
                        // it must not keep running.
                        if !st.state.is_terminal() {
                            if let Some(agent) = &st.agent_id {
                                d.kills.push((st.task_id.value.clone(), agent.value.clone()));
                            }
                        }
                        continue;
                    };
                    let before = run.clone();
                    let outcome = run.update(st.task_id.as_str(), st.state, now);
                    tracing::debug!(task = %st.task_id, state = %st.state, run = %run.id, "task update");
                    match outcome {
                        crate::state::Outcome::Ended => {
                            tracing::info!(job = run.job_id(), run = %run.id, status = ?run.status, "job run ended");
                            d.finish(state, run, now, keep);
                        }
                        crate::state::Outcome::Running if run != before => d.put_run(run),
                        crate::state::Outcome::Running => {}
                    }
                }
                Ok(())
            })
            .await;
        tracing::debug!(updates = n, took = ?t0.elapsed(), "stored task updates");
        if let Err(e) = stored {
            // Not acknowledged: the agent sends them again.
            tracing::error!(error = ?e, "cannot store task updates; not acknowledging them");
            return;
        }
        let Some(conn) = self.connection() else {
            return;
        };
        let acks: Vec<CallBody> = statuses
            .iter()
            .filter_map(Acknowledge::of)
            .map(CallBody::Acknowledge)
            .collect();
        if acks.is_empty() {
            return;
        }
        // In the background, so the next offers and updates are read meanwhile; bounded by
        // the permits, which the task holds until its calls are done.
        let Some(permit) = self.ack_permits(acks.len()).await else {
            return;
        };
        tokio::spawn(async move {
            futures::stream::iter(acks)
                .for_each_concurrent(CALLS_IN_FLIGHT, |call| {
                    let conn = conn.clone();
                    async move {
                        let _ = conn.call(call).await;
                    }
                })
                .await;
            drop(permit);
        });
    }

    /// Matches offers against the runs waiting for a task; the launched tasks are stored
    /// before any ACCEPT goes out, then every offer is answered.
    async fn on_offers(&self, offers: Vec<Offer>) {
        let Some(conn) = self.connection() else {
            return;
        };
        let planned = self
            .change(|state, now, d| {
                let plan = match_offers(state, &offers, now);
                for (run, _, _) in &plan.launches {
                    d.put_run(run.clone());
                }
                Ok(plan)
            })
            .await;
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(error = ?e, "cannot store launched tasks; declining the offers");
                MatchPlan {
                    launches: Vec::new(),
                    waiting: true,
                }
            }
        };
        let launched = plan.launches.len();
        if launched > 0 {
            tracing::info!(tasks = launched, "launching job tasks");
            self.metrics().launched(launched);
        }
        let refuse = if plan.waiting {
            REFUSE_BUSY
        } else {
            REFUSE_IDLE
        };
        let mut calls = Vec::new();
        for offer in &offers {
            let tasks: Vec<TaskInfo> = plan
                .launches
                .iter()
                .filter(|(_, _, o)| *o == offer.id.value)
                .map(|(_, t, _)| t.clone())
                .collect();
            let filters = Some(Filters {
                refuse_seconds: Some(refuse),
            });
            if tasks.is_empty() {
                calls.push(CallBody::Decline(Decline {
                    offer_ids: vec![offer.id.clone()],
                    filters,
                }));
            } else {
                calls.push(CallBody::Accept(Accept {
                    offer_ids: vec![offer.id.clone()],
                    operations: vec![Operation::launch(tasks)],
                    filters,
                }));
            }
        }
        futures::stream::iter(calls)
            .for_each_concurrent(CALLS_IN_FLIGHT, |call| {
                let conn = conn.clone();
                async move {
                    let launched = launched_tasks(&call);
                    let Err(e) = conn.call(call).await else { return };
                    tracing::warn!(error = %e, "offer answer not delivered");
                    // An ACCEPT that timed out may or may not have reached the master: ask
                    // for its tasks; the master answers TASK_LOST for those it never
                    // launched, and their runs' restart policy decides.
                    if !launched.is_empty() {
                        let reconcile = CallBody::Reconcile(Reconcile { tasks: launched });
                        if let Err(e) = conn.call(reconcile).await {
                            tracing::warn!(error = %e, "cannot reconcile the tasks of an undelivered offer answer");
                        }
                    }
                }
            })
            .await;
        // Runs queued while these offers were answered may have had their REVIVE reach the
        // master before the answers' filters: ask again, or they wait out the filters.
        let now = self.clock().now();
        if self.lock().await.runs.values().any(|r| r.wants_task(now)) {
            self.revive();
        }
    }
}

/// The tasks an ACCEPT launches, as a RECONCILE names them.
fn launched_tasks(call: &CallBody) -> Vec<ReconcileTask> {
    let CallBody::Accept(accept) = call else {
        return Vec::new();
    };
    accept
        .operations
        .iter()
        .filter_map(|op| match op {
            Operation::Launch(l) => Some(&l.task_infos),
            _ => None,
        })
        .flatten()
        .map(|t| ReconcileTask {
            task_id: t.task_id.clone(),
            agent_id: Some(t.agent_id.clone()),
        })
        .collect()
}

/// The launches a batch of offers allows.
#[derive(Debug, Default)]
pub struct MatchPlan {
    /// (the run with its new task, the TaskInfo, the offer id).
    pub launches: Vec<(Run, TaskInfo, String)>,
    /// Whether runs still wait for a task after these launches.
    pub waiting: bool,
}

/// Puts each waiting run (oldest first) on the first offer with room that satisfies its
/// constraints.
pub fn match_offers(state: &State, offers: &[Offer], now: DateTime<Utc>) -> MatchPlan {
    let mut room: Vec<Resources> = offers
        .iter()
        .map(|o| Resources::from_api(&o.resources).unwrap_or_default())
        .collect();
    let mut waiting: Vec<&Run> = state.runs.values().filter(|r| r.wants_task(now)).collect();
    waiting.sort_by_key(|r| r.created_at);
    let mut plan = MatchPlan::default();
    for run in waiting {
        let need = Resources {
            cpus: run.spec.run.cpus,
            mem: run.spec.run.mem,
            disk: run.spec.run.disk,
            ..Resources::default()
        };
        let found = offers
            .iter()
            .zip(room.iter_mut())
            .find(|(o, r)| r.contains(&need) && constraints_hold(run, o));
        let Some((offer, r)) = found else {
            plan.waiting = true;
            continue;
        };
        *r = r.sub(&need);
        let id = task_id(run.job_id(), &run.id, &uuid::Uuid::new_v4().to_string());
        let role = offer
            .allocation_info
            .as_ref()
            .and_then(|a| a.role.as_deref());
        let task = task_info(run, &id, offer.agent_id.as_str(), &need, role);
        let mut run = run.clone();
        run.launched(id, offer.agent_id.value.clone(), now);
        plan.launches.push((run, task, offer.id.value.clone()));
    }
    plan
}

/// Whether `run`'s placement constraints hold on `offer`'s agent (`hostname` is the agent's
/// host name, other attributes its text attributes).
pub fn constraints_hold(run: &Run, offer: &Offer) -> bool {
    run.spec.run.placement.constraints.iter().all(|c| {
        let value = if c.attribute == "hostname" {
            Some(offer.hostname.as_str())
        } else {
            offer.attribute(&c.attribute)
        };
        let want = c.value.as_deref().unwrap_or_default();
        let full =
            |v: &str| regex::Regex::new(&format!("^(?:{want})$")).is_ok_and(|r| r.is_match(v));
        match c.operator {
            Operator::Eq => value == Some(want),
            Operator::Like => value.is_some_and(full),
            Operator::Unlike => !value.is_some_and(full),
        }
    })
}

/// The Mesos task name of a run's task: the run's path reversed and dot-joined, as Marathon
/// names a run spec's tasks (`20240101120000abcde.nightly.backup`).
pub fn task_name(job_id: &str, run_id: &str) -> String {
    let mut segs: Vec<&str> = job_id.split('.').collect();
    segs.push(run_id);
    segs.reverse();
    segs.join(".")
}

/// The TaskInfo of `run`'s next task on `agent`.
pub fn task_info(
    run: &Run,
    task_id: &str,
    agent: &str,
    resources: &Resources,
    role: Option<&str>,
) -> TaskInfo {
    let spec = &run.spec.run;
    let image = spec.docker.as_ref().filter(|d| !d.image.is_empty());
    let mut variables: Vec<Variable> = spec
        .env
        .iter()
        .filter_map(|(k, v)| match v {
            EnvValue::Value(v) => Some(Variable {
                name: k.clone(),
                value: v.clone(),
                kind: None,
            }),
            // Secrets are an Enterprise feature: a secret variable is left unset.
            EnvValue::Secret { .. } => None,
        })
        .collect();
    for (k, v) in [
        ("METRONOME_JOB_ID", run.job_id()),
        ("METRONOME_JOB_RUN_ID", run.id.as_str()),
    ] {
        variables.push(Variable {
            name: k.into(),
            value: v.into(),
            kind: None,
        });
    }
    let (value, shell, arguments) = match (&spec.cmd, &spec.args) {
        (Some(cmd), _) => (Some(cmd.clone()), Some(true), Vec::new()),
        // argv: with an image its entrypoint takes them, else the first is the program.
        (None, Some(args)) if image.is_some() => (None, Some(false), args.clone()),
        (None, Some(args)) => (args.first().cloned(), Some(false), args.clone()),
        (None, None) => (None, Some(false), Vec::new()),
    };
    let command = CommandInfo {
        value,
        shell,
        arguments,
        environment: Some(Environment { variables }),
        uris: spec
            .artifacts
            .iter()
            .map(|a| Uri {
                value: a.uri.clone(),
                executable: Some(a.executable),
                extract: Some(a.extract),
                cache: Some(a.cache),
                output_file: None,
            })
            .collect(),
        user: spec.user.clone(),
    };
    // As Metronome: volumes belong to the image's container; a job without an image runs as
    // a plain command task.
    let container = image.map(|d| {
        let volumes: Vec<HostVolume<'_>> = spec
            .volumes
            .iter()
            .map(|v| HostVolume {
                container_path: &v.container_path,
                host_path: &v.host_path,
                read_only: v.mode == Mode::Ro,
            })
            .collect();
        mesos_image(&d.image, d.force_pull_image, None, &volumes)
    });
    TaskInfo {
        name: task_name(run.job_id(), &run.id),
        task_id: Id::new(task_id),
        agent_id: Id::new(agent),
        resources: resources.to_api(role),
        command: Some(command),
        kill_policy: spec.task_kill_grace_period_seconds.map(|s| KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: (s.max(0.0) * 1e9).min(i64::MAX as f64) as i64,
            }),
        }),
        container,
        ..TaskInfo::default()
    }
}

#[cfg(test)]
mod tests;
