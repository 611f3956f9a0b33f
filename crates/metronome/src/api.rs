//! Wire types of Metronome 0.4.5's REST API, in its field order and with its defaults, so the
//! CLI, the tests and the server share them.
//!
//! A job spec is `{"id", "description", "labels", "run"}` (schedules travel apart, or inside
//! `/v0/scheduled-jobs`); timestamps are `yyyy-MM-dd'T'HH:mm:ss.SSSZ` in UTC
//! (`2016-07-15T13:02:59.735+0000`), as Metronome's Joda formatter writes them.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

/// Metronome's defaults (`JobRunSpec`, `ScheduleSpec`).
pub mod defaults {
    /// `run.cpus`.
    pub const CPUS: f64 = 1.0;
    /// `run.mem` (MiB).
    pub const MEM: f64 = 128.0;
    /// `run.disk` (MiB).
    pub const DISK: f64 = 0.0;
    /// `run.maxLaunchDelay` (seconds): one hour.
    pub const MAX_LAUNCH_DELAY: u64 = 3600;
    /// `startingDeadlineSeconds`: 15 minutes.
    pub const STARTING_DEADLINE: u64 = 900;
    /// `timezone`.
    pub const TIMEZONE: &str = "UTC";
    /// Finished runs kept per job in the history (`metronome.history.count`).
    pub const HISTORY_COUNT: usize = 1000;
}

/// A job (`JobSpec`), as `/v1/jobs` reads and writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Dot-separated segments of `[a-z0-9-]`.
    pub id: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What a run of it runs.
    pub run: RunSpec,
}

/// A job with its schedules, as `/v0/scheduled-jobs` reads and writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledJobSpec {
    /// Dot-separated segments of `[a-z0-9-]`.
    pub id: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its schedules (Metronome supports one).
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    /// What a run of it runs.
    pub run: RunSpec,
}

/// `run` (`JobRunSpec`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunSpec {
    /// CPU shares.
    #[serde(default = "cpus")]
    pub cpus: f64,
    /// Memory in MiB.
    #[serde(default = "mem")]
    pub mem: f64,
    /// Disk in MiB.
    #[serde(default)]
    pub disk: f64,
    /// A shell line (`/bin/sh -c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// argv, instead of `cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Who the task runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    /// Placement constraints.
    #[serde(default)]
    pub placement: Placement,
    /// URIs the fetcher puts in the sandbox.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// The launch back-off's ceiling, in seconds.
    #[serde(default = "max_launch_delay")]
    pub max_launch_delay: u64,
    /// A container image to run the task in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// Host paths mounted into the container.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// What happens when a task fails.
    #[serde(default)]
    pub restart: Restart,
    /// SIGTERM to SIGKILL, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<f64>,
    /// Secrets (Enterprise; kept and echoed).
    #[serde(default)]
    pub secrets: BTreeMap<String, serde_json::Value>,
}

fn cpus() -> f64 {
    defaults::CPUS
}
fn mem() -> f64 {
    defaults::MEM
}
fn max_launch_delay() -> u64 {
    defaults::MAX_LAUNCH_DELAY
}

/// An environment variable: a value, or a secret's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// A plain value.
    Value(String),
    /// `{"secret": "<name>"}`.
    Secret {
        /// The secret's name.
        secret: String,
    },
}

/// `placement`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// All must hold on an agent for a task to go there.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
}

/// A placement constraint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// The agent attribute (`hostname` is the agent's host name).
    pub attribute: String,
    /// How to compare.
    pub operator: Operator,
    /// With what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A constraint's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    /// The attribute equals the value.
    #[serde(rename = "EQ")]
    Eq,
    /// The attribute matches the value as a regular expression.
    #[serde(rename = "LIKE")]
    Like,
    /// The attribute does not match the value.
    #[serde(rename = "UNLIKE")]
    Unlike,
}

/// An artifact to fetch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Where from.
    pub uri: String,
    /// Unpack archives.
    #[serde(default = "yes")]
    pub extract: bool,
    /// chmod +x.
    #[serde(default)]
    pub executable: bool,
    /// Keep it in the fetcher's cache.
    #[serde(default)]
    pub cache: bool,
}

fn yes() -> bool {
    true
}

/// `docker`: the image the task runs in (on the agents' Mesos containerizer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Docker {
    /// The image reference.
    pub image: String,
    /// Docker's privileged mode (kept; the Mesos containerizer ignores it).
    #[serde(default)]
    pub privileged: bool,
    /// Docker run parameters (kept; the Mesos containerizer ignores them).
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Pull even when the agent has the image.
    #[serde(default)]
    pub force_pull_image: bool,
}

/// A Docker parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// A host path mounted into the task's container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Where the task sees it.
    pub container_path: String,
    /// The agent's path.
    pub host_path: String,
    /// `RO` or `RW`.
    pub mode: Mode,
}

/// A volume's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Read-only.
    #[serde(rename = "RO")]
    Ro,
    /// Read-write.
    #[serde(rename = "RW")]
    Rw,
}

/// `restart`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Restart {
    /// `NEVER` or `ON_FAILURE`.
    #[serde(default)]
    pub policy: RestartPolicy,
    /// How long after the run's start a failed task is still replaced (forever if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<u64>,
}

/// A restart policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// A failed task fails the run.
    #[default]
    #[serde(rename = "NEVER")]
    Never,
    /// A failed task is replaced until the active deadline.
    #[serde(rename = "ON_FAILURE")]
    OnFailure,
}

/// A schedule (`ScheduleSpec`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Its id (`[a-z0-9-]`).
    pub id: String,
    /// A 5-field cron expression.
    pub cron: String,
    /// An IANA time zone the expression is read in.
    #[serde(default = "utc")]
    pub timezone: String,
    /// How late a run may still start, in seconds.
    #[serde(default = "starting_deadline")]
    pub starting_deadline_seconds: u64,
    /// `ALLOW` or `FORBID`.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Whether it fires.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// When it fires next (output only).
    #[serde(
        default,
        rename = "nextRunAt",
        skip_deserializing,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_run_at: Option<String>,
}

fn utc() -> String {
    defaults::TIMEZONE.into()
}
fn starting_deadline() -> u64 {
    defaults::STARTING_DEADLINE
}

/// What a schedule does when its job still runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConcurrencyPolicy {
    /// Start another run.
    #[default]
    #[serde(rename = "ALLOW")]
    Allow,
    /// Skip the fire time.
    #[serde(rename = "FORBID")]
    Forbid,
}

/// A run's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Not stored yet.
    Initial,
    /// Stored; its task is queued or launched.
    Starting,
    /// A task was reported staging, starting or running.
    Active,
    /// A task finished.
    Success,
    /// No task finished and none will be launched.
    Failed,
}

/// A job run (`JobRun`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    /// `yyyyMMddHHmmss` + 5 alphanumerics.
    pub id: String,
    /// The job.
    pub job_id: String,
    /// Its status.
    pub status: RunStatus,
    /// When it was created.
    pub created_at: String,
    /// When it ended (`null` while active).
    pub completed_at: Option<String>,
    /// Its tasks.
    pub tasks: Vec<JobRunTask>,
}

/// A task of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRunTask {
    /// The Mesos task id.
    pub id: String,
    /// When it was launched.
    pub started_at: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Its Mesos state (`TASK_RUNNING`, ...).
    pub status: String,
}

/// A finished run in the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    /// The run.
    pub id: String,
    /// When it was created.
    pub created_at: String,
    /// When it finished.
    pub finished_at: String,
}

/// `history`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobHistory {
    /// Runs that succeeded.
    pub success_count: u64,
    /// Runs that failed.
    pub failure_count: u64,
    /// The last success.
    pub last_success_at: Option<String>,
    /// The last failure.
    pub last_failure_at: Option<String>,
    /// The latest successful runs, newest first.
    pub successful_finished_runs: Vec<RunInfo>,
    /// The latest failed runs, newest first.
    pub failed_finished_runs: Vec<RunInfo>,
}

/// `historySummary`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobHistorySummary {
    /// Runs that succeeded.
    pub success_count: u64,
    /// Runs that failed.
    pub failure_count: u64,
    /// The last success.
    pub last_success_at: Option<String>,
    /// The last failure.
    pub last_failure_at: Option<String>,
}

/// A job with what `embed` asked for (`JobInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its run spec.
    pub run: RunSpec,
    /// `embed=schedules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedules: Option<Vec<Schedule>>,
    /// `embed=activeRuns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_runs: Option<Vec<JobRun>>,
    /// `embed=history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<JobHistory>,
    /// `embed=historySummary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_summary: Option<JobHistorySummary>,
}

/// What `embed` may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Embed {
    /// `activeRuns`.
    ActiveRuns,
    /// `schedules`.
    Schedules,
    /// `history`.
    History,
    /// `historySummary`.
    HistorySummary,
}

impl Embed {
    /// Every value, with its name.
    pub const ALL: [(Embed, &'static str); 4] = [
        (Embed::ActiveRuns, "activeRuns"),
        (Embed::Schedules, "schedules"),
        (Embed::History, "history"),
        (Embed::HistorySummary, "historySummary"),
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        Embed::ALL
            .iter()
            .find(|(e, _)| *e == self)
            .map_or("", |(_, n)| n)
    }

    /// The embed named `name`.
    pub fn parse(name: &str) -> Option<Embed> {
        Embed::ALL.iter().find(|(_, n)| *n == name).map(|(e, _)| *e)
    }
}

/// A queued run (`GET /v1/queue`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedJob {
    /// The job.
    pub job_id: String,
    /// Its runs waiting for a launch.
    pub runs: Vec<QueuedRun>,
}

/// A run in the queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedRun {
    /// The run's id.
    pub run_id: String,
}

/// `GET /info`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// The Metronome version served.
    pub version: String,
    /// The Marathon library version Metronome 0.4.5 was built on.
    pub lib_version: String,
}

/// The Metronome version whose API is served.
pub const VERSION: &str = "0.4.5";
/// The Marathon library version of Metronome 0.4.5.
pub const LIB_VERSION: &str = "1.3.13";

/// Formats a time as Metronome does: `2016-07-15T13:02:59.735+0000`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// Parses [`timestamp`]'s form (and RFC 3339).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Milliseconds since the epoch as a time (for stored records).
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_metronome_writes_them() {
        let t = from_millis(1_468_587_779_735);
        assert_eq!(timestamp(t), "2016-07-15T13:02:59.735+0000");
        assert_eq!(parse_timestamp("2016-07-15T13:02:59.735+0000"), Some(t));
    }

    #[test]
    fn the_example_job_reads_and_writes_back_with_defaults() {
        let spec: JobSpec = serde_json::from_str(
            r#"{"id":"prod.example.app","run":{"cmd":"sleep 1","cpus":1.5,"mem":32,"disk":0}}"#,
        )
        .unwrap();
        let out = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"id":"prod.example.app","labels":{},"run":{
                "cpus":1.5,"mem":32.0,"disk":0.0,"cmd":"sleep 1","env":{},
                "placement":{"constraints":[]},"artifacts":[],"maxLaunchDelay":3600,
                "volumes":[],"restart":{"policy":"NEVER"},"secrets":{}}})
        );
    }

    #[test]
    fn embeds_have_metronome_names() {
        for (e, n) in Embed::ALL {
            assert_eq!(Embed::parse(n), Some(e));
            assert_eq!(e.name(), n);
        }
        assert_eq!(Embed::parse("tasks"), None);
    }
}
