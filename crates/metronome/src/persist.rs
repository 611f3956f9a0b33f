//! Metronome's state in the `store`, under `/metronome`: jobs (with schedules), active runs,
//! histories, schedules' last fire times and the framework id. A change is stored before it
//! is acknowledged, so a restarted or newly elected Metronome resumes where the last stopped.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dcos_store::records::{put, RecordError, Records};
use dcos_store::{Store, Write};

use crate::state::{History, Job, Run, State};

const JOBS: &str = "/metronome/jobs";
const RUNS: &str = "/metronome/runs";
const HISTORY: &str = "/metronome/history";
const FIRED: &str = "/metronome/fired";
const FRAMEWORK_ID: &str = "/metronome/framework-id";

/// Persistence failures.
pub type Error = RecordError;

/// The store, under `/metronome`.
#[derive(Clone)]
pub struct Persist<S: Store> {
    records: Records<S>,
}

/// Job ids are `[a-z0-9.-]` and run ids alphanumeric: `:` separates them in one node name.
fn run_node(job: &str, run: &str) -> String {
    format!("{RUNS}/{job}:{run}")
}

impl<S: Store> Persist<S> {
    /// Wraps a store session.
    pub fn new(store: S) -> Self {
        let records = Records::new(store, "Metronome");
        Persist { records }
    }

    /// Applies `writes` in one transaction.
    pub async fn apply(&self, writes: Vec<Write>) -> Result<(), Error> {
        self.records.apply(writes).await
    }

    /// The write that stores a job.
    pub fn job(job: &Job) -> Result<Write, Error> {
        put(format!("{JOBS}/{}", job.spec.id), job)
    }

    /// The writes that forget a job, its history and schedule marks.
    pub fn job_removal(id: &str, fired: &[String]) -> Vec<Write> {
        let mut w = vec![
            Write::Remove {
                path: format!("{JOBS}/{id}"),
            },
            Write::Remove {
                path: format!("{HISTORY}/{id}"),
            },
        ];
        w.extend(fired.iter().map(|s| Write::Remove {
            path: format!("{FIRED}/{id}:{s}"),
        }));
        w
    }

    /// The write that stores an active run.
    pub fn run(run: &Run) -> Result<Write, Error> {
        put(run_node(run.job_id(), &run.id), run)
    }

    /// The write that forgets a run.
    pub fn run_removal(job: &str, run: &str) -> Write {
        Write::Remove {
            path: run_node(job, run),
        }
    }

    /// The write that stores a history.
    pub fn history(job: &str, h: &History) -> Result<Write, Error> {
        put(format!("{HISTORY}/{job}"), h)
    }

    /// The write that stores a schedule's last handled fire time.
    pub fn fired(job: &str, schedule: &str, at: DateTime<Utc>) -> Result<Write, Error> {
        put(format!("{FIRED}/{job}:{schedule}"), &at)
    }

    /// The write that stores the framework id.
    pub fn framework_id(id: &str) -> Write {
        Write::Put {
            path: FRAMEWORK_ID.into(),
            data: id.as_bytes().to_vec(),
        }
    }

    /// Loads everything.
    pub async fn load(&self) -> Result<State, Error> {
        let framework_id = self.records.text(FRAMEWORK_ID).await?;
        let jobs: BTreeMap<String, Job> = self
            .records
            .load_dir::<Job>(JOBS)
            .await?
            .into_iter()
            .map(|(_, j)| (j.spec.id.clone(), j))
            .collect();
        let runs = self
            .records
            .load_dir::<Run>(RUNS)
            .await?
            .into_iter()
            .map(|(_, r)| ((r.spec.id.clone(), r.id.clone()), r))
            .collect();
        let history = self
            .records
            .load_dir::<History>(HISTORY)
            .await?
            .into_iter()
            .collect();
        let fired = self
            .records
            .load_dir::<DateTime<Utc>>(FIRED)
            .await?
            .into_iter()
            .filter_map(|(name, at)| {
                let (job, schedule) = name.split_once(':')?;
                Some(((job.to_string(), schedule.to_string()), at))
            })
            .collect();
        Ok(State {
            jobs,
            runs,
            history,
            fired,
            framework_id,
        })
    }
}
