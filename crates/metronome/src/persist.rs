//! Metronome's state in the `store`, under `/metronome`: jobs (with schedules), active runs,
//! histories, schedules' last fire times and the framework id. A change is stored before it
//! is acknowledged, so a restarted or newly elected Metronome resumes where the last stopped.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dcos_store::{Store, Write};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::state::{History, Job, Run, State};

const JOBS: &str = "/metronome/jobs";
const RUNS: &str = "/metronome/runs";
const HISTORY: &str = "/metronome/history";
const FIRED: &str = "/metronome/fired";
const FRAMEWORK_ID: &str = "/metronome/framework-id";

/// Persistence failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error("Metronome's store failed at {path}")]
    Store {
        /// The node.
        path: String,
        /// The cause.
        #[source]
        source: dcos_store::Error,
    },
    /// A record does not parse or serialize.
    #[error("the record at {path} is not valid")]
    Corrupt {
        /// The node.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The store, under `/metronome`.
#[derive(Clone)]
pub struct Persist<S: Store> {
    store: S,
}

fn put<T: Serialize>(path: String, value: &T) -> Result<Write, Error> {
    let data = serde_json::to_vec(value).map_err(|source| Error::Corrupt {
        path: path.clone(),
        source,
    })?;
    Ok(Write::Put { path, data })
}

/// Job ids are `[a-z0-9.-]` and run ids alphanumeric: `:` separates them in one node name.
fn run_node(job: &str, run: &str) -> String {
    format!("{RUNS}/{job}:{run}")
}

impl<S: Store> Persist<S> {
    /// Wraps a store session.
    pub fn new(store: S) -> Self {
        Persist { store }
    }

    /// Applies `writes` in one transaction.
    pub async fn apply(&self, writes: Vec<Write>) -> Result<(), Error> {
        let path = match writes.as_slice() {
            [] => return Ok(()),
            [one] => one.path().to_string(),
            [first, ..] => format!("{} and {} more", first.path(), writes.len() - 1),
        };
        self.store
            .write_all(writes)
            .await
            .map_err(|source| Error::Store { path, source })
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

    async fn load_dir<T: DeserializeOwned>(&self, dir: &str) -> Result<Vec<(String, T)>, Error> {
        let names = match self.store.children(dir).await {
            Ok(n) => n,
            Err(dcos_store::Error::NoNode { .. }) => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Store {
                    path: dir.into(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for name in names {
            let path = format!("{dir}/{name}");
            let got = self.store.get(&path).await.map_err(|source| Error::Store {
                path: path.clone(),
                source,
            })?;
            let Some((data, _)) = got else { continue };
            let value = serde_json::from_slice(&data).map_err(|source| Error::Corrupt {
                path: path.clone(),
                source,
            })?;
            out.push((name, value));
        }
        Ok(out)
    }

    /// Loads everything.
    pub async fn load(&self) -> Result<State, Error> {
        let framework_id = self
            .store
            .get(FRAMEWORK_ID)
            .await
            .map_err(|source| Error::Store {
                path: FRAMEWORK_ID.into(),
                source,
            })?
            .map(|(d, _)| String::from_utf8_lossy(&d).into_owned())
            .filter(|s| !s.is_empty());
        let jobs: BTreeMap<String, Job> = self
            .load_dir::<Job>(JOBS)
            .await?
            .into_iter()
            .map(|(_, j)| (j.spec.id.clone(), j))
            .collect();
        let runs = self
            .load_dir::<Run>(RUNS)
            .await?
            .into_iter()
            .map(|(_, r)| ((r.spec.id.clone(), r.id.clone()), r))
            .collect();
        let history = self
            .load_dir::<History>(HISTORY)
            .await?
            .into_iter()
            .collect();
        let fired = self
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
