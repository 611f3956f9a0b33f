//! Metronome's state and how runs move, without I/O: jobs with their schedules, the active
//! runs with their tasks, each job's history. Every change takes its time as an argument, so
//! a test (and a controlled clock) decides what "now" is.
//!
//! A run (`JobRunExecutorActor` in Metronome) is STARTING with a task queued; it becomes
//! ACTIVE when a task is reported staging, starting or running, SUCCESS when one finishes. A
//! task that fails (or is killed, lost, dropped) fails the run, unless the job's restart
//! policy is `ON_FAILURE` and its `activeDeadlineSeconds` since the run's creation have not
//! passed: then another task is queued after a back-off (1 s, growing 15% a try, at most
//! `maxLaunchDelay`). A run not ACTIVE within its schedule's starting deadline is aborted
//! (FAILED). A finished run leaves the active set for the job's history.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use dcos_mesos_api::api::TaskState;
use serde::{Deserialize, Serialize};

use crate::api::{self, JobSpec, RestartPolicy, RunStatus, Schedule};

/// A job: its spec and schedules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The spec.
    pub spec: JobSpec,
    /// Its schedules (at most one, as Metronome).
    #[serde(default)]
    pub schedules: Vec<Schedule>,
}

/// A task of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunTask {
    /// The Mesos task id.
    pub id: String,
    /// Its agent.
    pub agent_id: String,
    /// When it was launched.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// Its last known Mesos state.
    pub state: TaskState,
}

/// A run of a job, as stored while it is active.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `yyyyMMddHHmmss` + 5 alphanumerics.
    pub id: String,
    /// The job's spec when the run was created.
    pub spec: JobSpec,
    /// Its status.
    pub status: RunStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// Seconds after creation by which it must be ACTIVE (runs a schedule started).
    #[serde(default)]
    pub starting_deadline: Option<u64>,
    /// Its tasks, oldest first.
    #[serde(default)]
    pub tasks: Vec<RunTask>,
    /// When a task is wanted: not before this time (the launch back-off).
    #[serde(default)]
    pub queued: Option<DateTime<Utc>>,
    /// Tasks launched so far.
    #[serde(default)]
    pub attempts: u32,
}

/// A job's history (`JobHistory`), as stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Successful runs.
    pub success_count: u64,
    /// Failed runs.
    pub failure_count: u64,
    /// The last success.
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failure.
    #[serde(default)]
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Successful runs, newest first: (id, created, finished).
    #[serde(default)]
    pub successful: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    /// Failed runs, newest first.
    #[serde(default)]
    pub failed: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
}

/// Everything the leading Metronome holds.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Jobs by id.
    pub jobs: BTreeMap<String, Job>,
    /// Active runs by (job id, run id).
    pub runs: BTreeMap<(String, String), Run>,
    /// Histories by job id.
    pub history: BTreeMap<String, History>,
    /// Each schedule's last handled fire time, by (job id, schedule id).
    pub fired: BTreeMap<(String, String), DateTime<Utc>>,
    /// The framework id.
    pub framework_id: Option<String>,
}

/// Mesos states that make a run ACTIVE.
pub fn is_active(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::Staging | TaskState::Starting | TaskState::Running | TaskState::Killing
    )
}

/// The first launch back-off, and its growth per try (Marathon's launch queue defaults).
const BACKOFF: f64 = 1.0;
const BACKOFF_FACTOR: f64 = 1.15;

/// A Mesos task id for a run's task: Marathon's form for the run's path
/// (`<job segments>_<run id>.<uuid>`).
pub fn task_id(job_id: &str, run_id: &str, uuid: &str) -> String {
    format!("{}_{run_id}.{uuid}", job_id.replace('.', "_"))
}

/// The (job id, run id) a task id names, as [`task_id`] makes them.
pub fn run_of_task(task_id: &str) -> Option<(String, String)> {
    let (path, _) = task_id.rsplit_once('.')?;
    let (job, run) = path.rsplit_once('_')?;
    Some((job.replace('_', "."), run.to_string()))
}

/// What became of a run after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still active.
    Running,
    /// Ended (SUCCESS or FAILED): it leaves the active set for the history.
    Ended,
}

// === impl Run ===

impl Run {
    /// A new run of `spec`, queued for a task at once.
    pub fn new(
        spec: JobSpec,
        id: String,
        now: DateTime<Utc>,
        starting_deadline: Option<u64>,
    ) -> Run {
        Run {
            id,
            spec,
            status: RunStatus::Starting,
            created_at: now,
            completed_at: None,
            starting_deadline,
            tasks: Vec::new(),
            queued: Some(now),
            attempts: 0,
        }
    }

    /// The job it runs.
    pub fn job_id(&self) -> &str {
        &self.spec.id
    }

    /// Whether a task may be launched for it at `now`.
    pub fn wants_task(&self, now: DateTime<Utc>) -> bool {
        self.queued.is_some_and(|t| t <= now) && !self.has_live_task()
    }

    /// Whether one of its tasks may still run.
    pub fn has_live_task(&self) -> bool {
        self.tasks.iter().any(|t| !t.state.is_terminal())
    }

    /// Records a launched task.
    pub fn launched(&mut self, task_id: String, agent_id: String, now: DateTime<Utc>) {
        self.queued = None;
        self.attempts += 1;
        self.tasks.push(RunTask {
            id: task_id,
            agent_id,
            started_at: now,
            completed_at: None,
            state: TaskState::Staging,
        });
    }

    /// Applies a task's new state.
    pub fn update(&mut self, task_id: &str, state: TaskState, now: DateTime<Utc>) -> Outcome {
        let Some(task) = self.tasks.iter_mut().find(|t| t.id == task_id) else {
            return Outcome::Running;
        };
        if task.state.is_terminal() {
            // A repeated terminal update (after a failover) changes nothing.
            return Outcome::Running;
        }
        task.state = state;
        if state.is_terminal() {
            task.completed_at = Some(now);
        }
        if is_active(state) {
            self.status = RunStatus::Active;
            return Outcome::Running;
        }
        if state == TaskState::Finished {
            self.end(RunStatus::Success, now);
            return Outcome::Ended;
        }
        if !state.is_terminal() {
            // Unreachable or unknown: the task may come back; wait.
            return Outcome::Running;
        }
        self.failed_task(now)
    }

    /// A task of the run failed: another one, or the run fails.
    fn failed_task(&mut self, now: DateTime<Utc>) -> Outcome {
        let restart = &self.spec.run.restart;
        let in_time = restart
            .active_deadline_seconds
            .is_none_or(|d| deadline(self.created_at, d).is_none_or(|at| at > now));
        if restart.policy == RestartPolicy::OnFailure && in_time {
            self.queued = Some(now + self.backoff());
            return Outcome::Running;
        }
        self.end(RunStatus::Failed, now);
        Outcome::Ended
    }

    /// The delay before the next task: 1 s growing by 15% per task launched, at most
    /// `maxLaunchDelay`.
    pub fn backoff(&self) -> Duration {
        let tries = i32::try_from(self.attempts.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = (BACKOFF * BACKOFF_FACTOR.powi(tries))
            .min(self.spec.run.max_launch_delay as f64)
            .max(0.0);
        Duration::milliseconds((secs * 1000.0) as i64)
    }

    /// Whether its starting deadline passed before it became ACTIVE.
    pub fn past_starting_deadline(&self, now: DateTime<Utc>) -> bool {
        self.status == RunStatus::Starting
            && self
                .starting_deadline
                .is_some_and(|d| deadline(self.created_at, d).is_some_and(|at| at <= now))
    }

    /// Ends it with `status`.
    pub fn end(&mut self, status: RunStatus, now: DateTime<Utc>) {
        self.status = status;
        self.completed_at = Some(now);
        self.queued = None;
    }

    /// Aborts it (stopped, its job deleted, or past its starting deadline): FAILED; returns
    /// the tasks to kill.
    pub fn abort(&mut self, now: DateTime<Utc>) -> Vec<RunTask> {
        let live = self
            .tasks
            .iter()
            .filter(|t| !t.state.is_terminal())
            .cloned()
            .collect();
        self.end(RunStatus::Failed, now);
        live
    }

    /// The wire form.
    pub fn to_api(&self) -> api::JobRun {
        api::JobRun {
            id: self.id.clone(),
            job_id: self.spec.id.clone(),
            status: self.status,
            created_at: api::timestamp(self.created_at),
            completed_at: self.completed_at.map(api::timestamp),
            tasks: self
                .tasks
                .iter()
                .map(|t| api::JobRunTask {
                    id: t.id.clone(),
                    started_at: api::timestamp(t.started_at),
                    completed_at: t.completed_at.map(api::timestamp),
                    status: t.state.as_str().to_string(),
                })
                .collect(),
        }
    }
}

// === impl History ===

impl History {
    /// Records an ended run (newest first, at most `keep` kept per outcome).
    pub fn record(&mut self, run: &Run, now: DateTime<Utc>, keep: usize) {
        let entry = (
            run.id.clone(),
            run.created_at,
            run.completed_at.unwrap_or(now),
        );
        let (count, last, list) = if run.status == RunStatus::Success {
            (
                &mut self.success_count,
                &mut self.last_success_at,
                &mut self.successful,
            )
        } else {
            (
                &mut self.failure_count,
                &mut self.last_failure_at,
                &mut self.failed,
            )
        };
        *count += 1;
        *last = Some(now);
        list.insert(0, entry);
        list.truncate(keep);
    }

    /// `history`.
    pub fn to_api(&self) -> api::JobHistory {
        let infos = |l: &[(String, DateTime<Utc>, DateTime<Utc>)]| {
            l.iter()
                .map(|(id, c, f)| api::RunInfo {
                    id: id.clone(),
                    created_at: api::timestamp(*c),
                    finished_at: api::timestamp(*f),
                })
                .collect()
        };
        api::JobHistory {
            success_count: self.success_count,
            failure_count: self.failure_count,
            last_success_at: self.last_success_at.map(api::timestamp),
            last_failure_at: self.last_failure_at.map(api::timestamp),
            successful_finished_runs: infos(&self.successful),
            failed_finished_runs: infos(&self.failed),
        }
    }

    /// `historySummary`.
    pub fn summary(&self) -> api::JobHistorySummary {
        api::JobHistorySummary {
            success_count: self.success_count,
            failure_count: self.failure_count,
            last_success_at: self.last_success_at.map(api::timestamp),
            last_failure_at: self.last_failure_at.map(api::timestamp),
        }
    }
}

/// A run id at `now`: UTC `yyyyMMddHHmmss` and five random alphanumerics from `random`.
pub fn run_id(now: DateTime<Utc>, random: &[u8; 16]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = random
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{}{suffix}", now.format("%Y%m%d%H%M%S"))
}

#[cfg(test)]
mod tests;

/// `secs` after `from`; None when that is past what a date holds (a deadline that never
/// passes: a spec's number is input, and chrono panics on overflow).
fn deadline(from: DateTime<Utc>, secs: u64) -> Option<DateTime<Utc>> {
    let delta = Duration::try_seconds(i64::try_from(secs).ok()?)?;
    from.checked_add_signed(delta)
}
