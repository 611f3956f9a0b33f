//! The leading Metronome: the state behind the REST API and the operations it calls.
//!
//! Every change of the stored state goes one way: planned under the state lock into a
//! [`Delta`] (the records to write and forget, the tasks to kill), the delta written in one
//! `write_all` without the lock, then applied. Changes take turns (`changes`), so what was
//! planned is still what is applied; readers never wait for the store.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use dcos_mesos_api::scheduler::{CallBody, Connection};
use dcos_store::{AnyStore, Write};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard, Notify};

use crate::api::{self, Embed, JobInfo, Schedule};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::persist::{self, Persist};
use crate::state::{History, Job, Run, RunTask, State};
use crate::validate::Rejected;

type P = Persist<AnyStore>;

/// Acknowledgements sent in the background at most; beyond this, reading the next status
/// updates waits for the master to take them.
const ACKS_QUEUED: usize = 4096;

/// An API failure, rendered as Metronome renders it (see `http`).
#[derive(Debug)]
pub enum ApiError {
    /// 422 with the violations.
    Invalid(Rejected),
    /// 404 with Metronome's body (`UnknownJob`, `UnknownSchedule`, `UnknownJobRun`).
    NotFound(Value),
    /// 409 with a message.
    Conflict(String),
    /// 500: the store failed; nothing changed.
    Internal(String),
}

impl From<persist::Error> for ApiError {
    fn from(e: persist::Error) -> Self {
        tracing::error!(error = %e, "store write failed");
        ApiError::Internal(e.to_string())
    }
}

/// `{"id": .., "message": "Job not found"}`.
pub fn unknown_job(id: &str) -> ApiError {
    ApiError::NotFound(json!({"id": id, "message": "Job not found"}))
}

/// `{"id": .., "message": "Schedule not found"}`.
pub fn unknown_schedule(id: &str) -> ApiError {
    ApiError::NotFound(json!({"id": id, "message": "Schedule not found"}))
}

/// `{"jobSpec": .., "id": .., "message": "Job Run not found"}`.
pub fn unknown_run(job: &str, run: &str) -> ApiError {
    ApiError::NotFound(json!({"jobSpec": job, "id": run, "message": "Job Run not found"}))
}

/// How the leading Metronome runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Mesos masters to subscribe at, in turn.
    pub masters: Vec<SocketAddr>,
    /// The host this Metronome runs on (framework `hostname`).
    pub hostname: String,
    /// The framework's web UI (Admin Router's `/service/metronome/` follows it).
    pub webui_url: String,
    /// The framework name (`metronome`).
    pub framework_name: String,
    /// Finished runs kept per job and outcome.
    pub history_count: usize,
    /// Its service account's login, when it must authenticate to the master (strict).
    pub login: Option<dcos_iam::client::ServiceLogin>,
}

/// One planned change: records to store and forget, tasks to kill afterwards.
#[derive(Debug, Default)]
pub struct Delta {
    jobs: BTreeMap<String, Option<Job>>,
    runs: BTreeMap<(String, String), Option<Run>>,
    history: BTreeMap<String, Option<History>>,
    fired: BTreeMap<(String, String), Option<DateTime<Utc>>>,
    framework_id: Option<String>,
    /// (task, agent) to kill once applied.
    pub kills: Vec<(String, String)>,
    /// Runs that started or ended: (job, run, status) for the metrics.
    ended: Vec<api::RunStatus>,
    pub(crate) started: usize,
}

impl Delta {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.runs.is_empty()
            && self.history.is_empty()
            && self.fired.is_empty()
            && self.framework_id.is_none()
    }

    /// Whether it only stores runs (no run ends, nothing else changes).
    fn only_run_updates(&self) -> bool {
        self.jobs.is_empty()
            && self.history.is_empty()
            && self.fired.is_empty()
            && self.framework_id.is_none()
            && self.ended.is_empty()
            && self.started == 0
            && self.runs.values().all(Option::is_some)
    }

    /// A run as this delta leaves it (its own copy if it touched it, else the state's).
    pub fn run(&self, state: &State, key: &(String, String)) -> Option<Run> {
        match self.runs.get(key) {
            Some(r) => r.clone(),
            None => state.runs.get(key).cloned(),
        }
    }

    /// Stores `run`.
    pub fn put_run(&mut self, run: Run) {
        self.runs
            .insert((run.spec.id.clone(), run.id.clone()), Some(run));
    }

    /// Ends `run`: it leaves the active set and is recorded in its job's history (unless the
    /// job itself goes).
    pub fn finish(&mut self, state: &State, run: Run, now: DateTime<Utc>, keep: usize) {
        let job = run.spec.id.clone();
        let key = (job.clone(), run.id.clone());
        self.ended.push(run.status);
        if !matches!(self.jobs.get(&job), Some(None)) {
            let mut h = match self.history.get(&job) {
                Some(h) => h.clone().unwrap_or_default(),
                None => state.history.get(&job).cloned().unwrap_or_default(),
            };
            h.record(&run, now, keep);
            self.history.insert(job, Some(h));
        }
        self.runs.insert(key, None);
    }

    /// Stores a job.
    pub fn put_job(&mut self, job: Job) {
        self.jobs.insert(job.spec.id.clone(), Some(job));
    }

    /// Marks a schedule handled up to `at`.
    pub fn fired(&mut self, job: &str, schedule: &str, at: DateTime<Utc>) {
        self.fired
            .insert((job.to_string(), schedule.to_string()), Some(at));
    }

    /// Records the framework id.
    pub fn framework_id(&mut self, id: String) {
        self.framework_id = Some(id);
    }

    fn writes(&self) -> Result<Vec<Write>, persist::Error> {
        let mut w = Vec::new();
        for (id, job) in &self.jobs {
            match job {
                Some(j) => w.push(P::job(j)?),
                None => w.extend(P::job_removal(id, &[])),
            }
        }
        for ((job, run), r) in &self.runs {
            match r {
                Some(r) => w.push(P::run(r)?),
                None => w.push(P::run_removal(job, run)),
            }
        }
        for (job, h) in &self.history {
            if let Some(h) = h {
                w.push(P::history(job, h)?);
            }
        }
        for ((job, s), at) in &self.fired {
            match at {
                Some(at) => w.push(P::fired(job, s, *at)?),
                None => w.push(Write::Remove {
                    path: format!("/metronome/fired/{job}:{s}"),
                }),
            }
        }
        if let Some(id) = &self.framework_id {
            w.push(P::framework_id(id));
        }
        Ok(w)
    }

    fn apply(self, state: &mut State) -> Vec<(String, String)> {
        for (id, job) in self.jobs {
            match job {
                Some(j) => {
                    state.jobs.insert(id, j);
                }
                None => {
                    state.jobs.remove(&id);
                    state.history.remove(&id);
                }
            }
        }
        for (key, r) in self.runs {
            match r {
                Some(r) => {
                    state.runs.insert(key, r);
                }
                None => {
                    state.runs.remove(&key);
                }
            }
        }
        for (job, h) in self.history {
            match h {
                Some(h) => {
                    state.history.insert(job, h);
                }
                None => {
                    state.history.remove(&job);
                }
            }
        }
        for (key, at) in self.fired {
            match at {
                Some(at) => {
                    state.fired.insert(key, at);
                }
                None => {
                    state.fired.remove(&key);
                }
            }
        }
        if let Some(id) = self.framework_id {
            state.framework_id = Some(id);
        }
        self.kills
    }
}

/// What the REST API, the framework loop and the schedule loop share.
#[derive(Clone)]
pub struct Metronome {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    changes: Mutex<()>,
    persist: P,
    clock: Clock,
    connection: std::sync::Mutex<Option<Connection>>,
    settings: Settings,
    metrics: Metrics,
    /// Runs applied but not stored yet (see [`Metronome::change_lazily`]).
    dirty: std::sync::Mutex<BTreeSet<(String, String)>>,
    /// Schedules changed: the schedule loop looks again.
    schedules_changed: Notify,
    /// A run was queued: the framework loop sends one REVIVE for all queued since its last.
    revive_wanted: std::sync::atomic::AtomicBool,
    /// Acknowledgements waiting to go out in the background, at most `ACKS_QUEUED`.
    acks_queued: Arc<tokio::sync::Semaphore>,
    started: Instant,
}

impl Metronome {
    /// Loads the stored state.
    pub async fn load(
        store: AnyStore,
        settings: Settings,
        clock: Clock,
    ) -> Result<Metronome, persist::Error> {
        let persist = Persist::new(store);
        let state = persist.load().await?;
        tracing::info!(
            jobs = state.jobs.len(),
            runs = state.runs.len(),
            "loaded Metronome state"
        );
        Ok(Metronome {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                changes: Mutex::new(()),
                persist,
                clock,
                connection: std::sync::Mutex::new(None),
                settings,
                metrics: Metrics::default(),
                dirty: std::sync::Mutex::new(BTreeSet::new()),
                schedules_changed: Notify::new(),
                revive_wanted: std::sync::atomic::AtomicBool::new(false),
                acks_queued: Arc::new(tokio::sync::Semaphore::new(ACKS_QUEUED)),
                started: Instant::now(),
            }),
        })
    }

    /// Locks the state for reading.
    pub async fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().await
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// How long this Metronome has led.
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
    }

    /// Wakes the schedule loop.
    pub(crate) fn schedules_changed(&self) -> &Notify {
        &self.inner.schedules_changed
    }

    /// The current Mesos connection.
    pub fn connection(&self) -> Option<Connection> {
        self.inner
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_connection(&self, c: Option<Connection>) {
        *self
            .inner
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = c;
    }

    /// One change: `plan` reads the state and fills a delta (or refuses); the delta is stored
    /// and applied; its kills are sent. Nothing changes when `plan` refuses or the store fails.
    pub async fn change<T>(
        &self,
        plan: impl FnOnce(&State, DateTime<Utc>, &mut Delta) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.change_with(false, plan).await
    }

    /// A change whose only records are runs moving among active task states (a task
    /// STARTING, RUNNING): applied at once and stored with the next change (the tick makes
    /// one every half second), not with an fsync of its own. A failover before that loses
    /// nothing the new leader cannot learn again: it reconciles every task on subscribing.
    /// A change that ends a run, or stores anything else, is stored before it applies.
    pub async fn change_lazily<T>(
        &self,
        plan: impl FnOnce(&State, DateTime<Utc>, &mut Delta) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.change_with(true, plan).await
    }

    async fn change_with<T>(
        &self,
        lazy: bool,
        plan: impl FnOnce(&State, DateTime<Utc>, &mut Delta) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let _turn = self.inner.changes.lock().await;
        let now = self.inner.clock.now();
        let mut delta = Delta::default();
        let out = {
            let state = self.lock().await;
            let out = plan(&state, now, &mut delta)?;
            if lazy && delta.only_run_updates() {
                let keys: Vec<(String, String)> = delta.runs.keys().cloned().collect();
                drop(state);
                let kills = delta.apply(&mut *self.lock().await);
                self.dirty().extend(keys);
                self.kill(kills).await;
                return Ok(out);
            }
            // Runs changed lazily before are stored with this change, as they are now.
            let dirty = std::mem::take(&mut *self.dirty());
            for key in dirty {
                if let (std::collections::btree_map::Entry::Vacant(e), Some(run)) =
                    (delta.runs.entry(key.clone()), state.runs.get(&key))
                {
                    e.insert(Some(run.clone()));
                }
            }
            out
        };
        if delta.is_empty() {
            self.kill(delta.kills).await;
            return Ok(out);
        }
        let writes = delta.writes()?;
        if let Err(e) = self.inner.persist.apply(writes).await {
            // What was lazily applied stays to be stored with the next change.
            self.dirty().extend(
                delta
                    .runs
                    .into_iter()
                    .filter(|(_, r)| r.is_some())
                    .map(|(k, _)| k),
            );
            return Err(e.into());
        }
        self.inner.metrics.runs(delta.started, &delta.ended);
        let kills = delta.apply(&mut *self.lock().await);
        self.kill(kills).await;
        Ok(out)
    }

    fn dirty(&self) -> std::sync::MutexGuard<'_, BTreeSet<(String, String)>> {
        self.inner.dirty.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn kill(&self, kills: Vec<(String, String)>) {
        if kills.is_empty() {
            return;
        }
        let Some(conn) = self.connection() else {
            return;
        };
        for (task, agent) in kills {
            let kill = dcos_mesos_api::scheduler::Kill {
                task_id: dcos_mesos_api::api::Id::new(task),
                agent_id: Some(dcos_mesos_api::api::Id::new(agent)),
                kill_policy: None,
            };
            if let Err(e) = conn.call(CallBody::Kill(kill)).await {
                tracing::warn!(error = %e, "KILL not delivered");
            }
        }
    }

    /// Asks for offers again (a run was queued): the framework loop sends one REVIVE for
    /// however many runs were queued since its last, so a burst of runs is one call.
    pub(crate) fn revive(&self) {
        self.inner
            .revive_wanted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a REVIVE was asked for since the last call.
    pub(crate) fn take_revive(&self) -> bool {
        self.inner
            .revive_wanted
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Room for `n` acknowledgements in the background; waits while too many are queued.
    pub(crate) async fn ack_permits(&self, n: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let n = u32::try_from(n.clamp(1, ACKS_QUEUED)).unwrap_or(1);
        self.inner
            .acks_queued
            .clone()
            .acquire_many_owned(n)
            .await
            .ok()
    }

    // === jobs ===

    /// Every job with what `embed` asks for.
    pub async fn jobs(&self, embed: &BTreeSet<Embed>) -> Vec<JobInfo> {
        let state = self.lock().await;
        let now = self.inner.clock.now();
        state
            .jobs
            .values()
            .map(|j| info(&state, j, embed, now, true))
            .collect()
    }

    /// One job with what `embed` asks for.
    pub async fn job(&self, id: &str, embed: &BTreeSet<Embed>) -> Option<JobInfo> {
        let state = self.lock().await;
        let now = self.inner.clock.now();
        state
            .jobs
            .get(id)
            .map(|j| info(&state, j, embed, now, false))
    }

    /// Creates a job (with schedules through `/v0`); 409 if it exists.
    pub async fn create_job(&self, job: Job) -> Result<Job, ApiError> {
        let out = self
            .change(|state, now, d| {
                if state.jobs.contains_key(&job.spec.id) {
                    return Err(ApiError::Conflict("Job with this id already exists".into()));
                }
                for s in &job.schedules {
                    d.fired(&job.spec.id, &s.id, now);
                }
                d.put_job(job.clone());
                Ok(job)
            })
            .await?;
        self.inner.schedules_changed.notify_one();
        Ok(out)
    }

    /// Changes a job: `update` makes the new one from the old; 404 if there is none.
    pub async fn update_job(
        &self,
        id: &str,
        update: impl FnOnce(&Job) -> Result<Job, ApiError>,
    ) -> Result<Job, ApiError> {
        let out = self
            .change(|state, now, d| {
                let old = state.jobs.get(id).ok_or_else(|| unknown_job(id))?;
                let new = update(old)?;
                // A schedule that changed starts over from now, as Metronome's does.
                for s in &new.schedules {
                    if !old.schedules.contains(s) {
                        d.fired(id, &s.id, now);
                    }
                }
                for s in &old.schedules {
                    if !new.schedules.iter().any(|n| n.id == s.id) {
                        d.fired.insert((id.to_string(), s.id.clone()), None);
                    }
                }
                d.put_job(new.clone());
                Ok(new)
            })
            .await?;
        self.inner.schedules_changed.notify_one();
        Ok(out)
    }

    /// Deletes a job: 409 with active runs unless `stop_runs`, which aborts them first.
    pub async fn delete_job(&self, id: &str, stop_runs: bool) -> Result<Job, ApiError> {
        let keep = self.inner.settings.history_count;
        let out = self
            .change(|state, now, d| {
                let job = state.jobs.get(id).ok_or_else(|| unknown_job(id))?.clone();
                let runs: Vec<Run> = state
                    .runs
                    .iter()
                    .filter(|((j, _), _)| j == id)
                    .map(|(_, r)| r.clone())
                    .collect();
                if !runs.is_empty() && !stop_runs {
                    return Err(ApiError::Conflict(
                        "There are active job runs. Override with stopCurrentJobRuns=true".into(),
                    ));
                }
                d.jobs.insert(id.to_string(), None);
                d.history.insert(id.to_string(), None);
                for s in &job.schedules {
                    d.fired.insert((id.to_string(), s.id.clone()), None);
                }
                for mut run in runs {
                    for t in run.abort(now) {
                        d.kills.push((t.id, t.agent_id));
                    }
                    d.finish(state, run, now, keep);
                }
                Ok(job)
            })
            .await?;
        self.inner.schedules_changed.notify_one();
        Ok(out)
    }

    // === schedules ===

    /// A job's schedules; 404 without the job.
    pub async fn schedules(&self, id: &str) -> Result<Vec<Schedule>, ApiError> {
        let state = self.lock().await;
        let now = self.inner.clock.now();
        let job = state.jobs.get(id).ok_or_else(|| unknown_job(id))?;
        Ok(job
            .schedules
            .iter()
            .map(|s| with_next_run(s.clone(), now))
            .collect())
    }

    // === runs ===

    /// Starts a run of job `id` now (from a schedule: with its starting deadline).
    pub async fn start_run(&self, id: &str, deadline: Option<u64>) -> Result<Run, ApiError> {
        let run = self
            .change(|state, now, d| {
                let job = state.jobs.get(id).ok_or_else(|| unknown_job(id))?;
                let run = Run::new(
                    job.spec.clone(),
                    crate::state::run_id(now, uuid::Uuid::new_v4().as_bytes()),
                    now,
                    deadline,
                );
                d.put_run(run.clone());
                d.started += 1;
                Ok(run)
            })
            .await?;
        tracing::info!(job = id, run = %run.id, "started a job run");
        self.revive();
        Ok(run)
    }

    /// A job's active runs (none for an unknown job: Metronome answers `[]`, not 404).
    pub async fn runs(&self, id: &str) -> Result<Vec<Run>, ApiError> {
        let state = self.lock().await;
        Ok(state
            .runs
            .iter()
            .filter(|((j, _), _)| j == id)
            .map(|(_, r)| r.clone())
            .collect())
    }

    /// An active run.
    pub async fn run(&self, id: &str, run: &str) -> Result<Run, ApiError> {
        self.lock()
            .await
            .runs
            .get(&(id.to_string(), run.to_string()))
            .cloned()
            .ok_or_else(|| unknown_run(id, run))
    }

    /// Stops an active run: it fails, its tasks are killed.
    pub async fn stop_run(&self, id: &str, run_id: &str) -> Result<Run, ApiError> {
        let keep = self.inner.settings.history_count;
        self.change(|state, now, d| {
            if !state.jobs.contains_key(id) {
                return Err(unknown_job(id));
            }
            let key = (id.to_string(), run_id.to_string());
            let mut run = state
                .runs
                .get(&key)
                .cloned()
                .ok_or_else(|| unknown_run(id, run_id))?;
            for t in run.abort(now) {
                d.kills.push((t.id, t.agent_id));
            }
            d.finish(state, run.clone(), now, keep);
            Ok(run)
        })
        .await
    }

    /// The runs waiting for a task, by job.
    pub async fn queue(&self) -> Vec<api::QueuedJob> {
        let state = self.lock().await;
        let mut by_job: BTreeMap<&str, Vec<api::QueuedRun>> = BTreeMap::new();
        for ((job, run), r) in &state.runs {
            if r.queued.is_some() {
                by_job.entry(job).or_default().push(api::QueuedRun {
                    run_id: run.clone(),
                });
            }
        }
        by_job
            .into_iter()
            .map(|(job, runs)| api::QueuedJob {
                job_id: job.to_string(),
                runs,
            })
            .collect()
    }

    /// Aborts runs past their starting deadline; whether any run waits for a task now.
    pub async fn deadlines(&self) -> bool {
        let keep = self.inner.settings.history_count;
        let result = self
            .change(|state, now, d| {
                for run in state.runs.values() {
                    if run.past_starting_deadline(now) {
                        tracing::info!(job = run.job_id(), run = %run.id, "starting deadline passed; aborting the run");
                        let mut run = run.clone();
                        for t in run.abort(now) {
                            d.kills.push((t.id, t.agent_id));
                        }
                        d.finish(state, run, now, keep);
                    }
                }
                Ok(state.runs.values().any(|r| r.wants_task(now)))
            })
            .await;
        result.unwrap_or(false)
    }

    /// Every task of an active run that may be live, for reconciliation.
    pub async fn live_tasks(&self) -> Vec<RunTask> {
        self.lock()
            .await
            .runs
            .values()
            .flat_map(|r| r.tasks.iter().filter(|t| !t.state.is_terminal()).cloned())
            .collect()
    }
}

/// A schedule with its next fire time.
pub fn with_next_run(mut s: Schedule, now: DateTime<Utc>) -> Schedule {
    s.next_run_at = crate::schedule::Cron::new(&s.cron, &s.timezone)
        .ok()
        .and_then(|c| c.next_after(now))
        .map(api::timestamp);
    s
}

/// A job with what `embed` asks for. In the list, `activeRuns` is left out of jobs without
/// runs, as Metronome's list does.
fn info(
    state: &State,
    job: &Job,
    embed: &BTreeSet<Embed>,
    now: DateTime<Utc>,
    list: bool,
) -> JobInfo {
    let id = &job.spec.id;
    let runs = || -> Vec<api::JobRun> {
        state
            .runs
            .iter()
            .filter(|((j, _), _)| j == id)
            .map(|(_, r)| r.to_api())
            .collect()
    };
    let history = || state.history.get(id).cloned().unwrap_or_default();
    JobInfo {
        id: id.clone(),
        description: job.spec.description.clone(),
        labels: job.spec.labels.clone(),
        run: job.spec.run.clone(),
        schedules: embed.contains(&Embed::Schedules).then(|| {
            job.schedules
                .iter()
                .map(|s| with_next_run(s.clone(), now))
                .collect()
        }),
        active_runs: if embed.contains(&Embed::ActiveRuns) {
            let r = runs();
            (!(list && r.is_empty())).then_some(r)
        } else {
            None
        },
        history: embed.contains(&Embed::History).then(|| history().to_api()),
        history_summary: embed
            .contains(&Embed::HistorySummary)
            .then(|| history().summary()),
    }
}
