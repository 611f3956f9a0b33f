//! What the agent keeps on disk across restarts (under `<work_dir>/meta`): its id
//! (`agent_id`), every run not yet finished and acknowledged (`tasks/<framework>__<task>.json`)
//! and every custom executor (`executors/<framework>__<executor>.json`); and how it knows a
//! checkpointed process is still the one it started ([`Process`]).
//!
//! Every checkpoint is written atomically and durably (`dcos_store::file`): a fresh temporary
//! file beside the target, fsynced, renamed over it, and the directory fsynced, so a crash or
//! power loss leaves either the old or the new content, never a torn file or a lost rename.
//! Checkpoints are the agent's own, but what is read back is checked all the same: a run
//! whose ids or sandbox would lead outside the work dir is ignored rather than trusted.

mod process;

use std::io;
use std::path::{Path, PathBuf};

use dcos_store::file::sync_dir;
use serde::de::DeserializeOwned;

pub(crate) use process::Process;

use super::executor::Executor;
use super::state::{Run, Shared};
use crate::api::{self, TaskState};

/// Replaces `path` with `bytes` atomically and durably; only the agent (root) reads them:
/// task checkpoints hold every TaskInfo with its environment.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    dcos_store::file::write_atomic(path, bytes, 0o600)
}

/// Removes `path` durably; a file already gone is fine.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and its parents) durably: the new entry survives a crash.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    sync_dir(parent(dir)?)
}

fn parent(path: &Path) -> io::Result<&Path> {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| io::Error::other(format!("{} has no parent dir", path.display())))
}

/// Writes `value` as JSON to `dir/<name>.json`, creating `dir` first.
fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize) -> io::Result<()> {
    let text = serde_json::to_vec(value).map_err(io::Error::other)?;
    create_dir(dir)?;
    write_atomic(&dir.join(format!("{name}.json")), &text)
}

impl Shared {
    fn meta_dir(&self) -> PathBuf {
        self.config.work_dir.join("meta")
    }

    fn tasks_dir(&self) -> PathBuf {
        self.meta_dir().join("tasks")
    }

    fn executors_dir(&self) -> PathBuf {
        self.meta_dir().join("executors")
    }

    /// Writes a run's latest state to its checkpoint, or removes the checkpoint once the run
    /// is terminal and acknowledged. `run` may be a stale snapshot: what is written is the
    /// run as it is now, so concurrent checkpoints of one run never leave an older state.
    pub(crate) fn checkpoint(&self, run: &Run) {
        let key = run.key();
        let _guard = self.lock_checkpoints();
        let current = {
            let st = self.lock();
            st.runs
                .get(&key)
                .or_else(|| st.runs.get(&format!("completed::{key}")))
                .cloned()
        };
        // A run no longer held (trimmed from the history) is only ever removed.
        let finished = |run: &Run| TaskState::is_terminal(run.state) && run.pending.is_empty();
        let Some(run) = current.or_else(|| finished(run).then(|| run.clone())) else {
            return;
        };
        let result = if finished(&run) {
            remove(&self.tasks_dir().join(format!("{key}.json")))
        } else {
            write_json(&self.tasks_dir(), &key, &run)
        };
        if let Err(e) = result {
            tracing::error!(error = %e, task = %key, "cannot checkpoint task");
        }
    }

    /// Writes an executor's latest state to its checkpoint (`executor` may be a stale
    /// snapshot; an executor no longer held is not written back).
    pub(crate) fn checkpoint_executor(&self, executor: &Executor) {
        let ekey = executor.key();
        let _guard = self.lock_checkpoints();
        let Some(executor) = self.lock().executors.get(&ekey).cloned() else {
            return;
        };
        if let Err(e) = write_json(&self.executors_dir(), &ekey, &executor) {
            tracing::error!(error = %e, executor = %ekey, "cannot checkpoint executor");
        }
    }

    /// Removes the checkpoint of the executor of `executor_key` (it has ended).
    pub(crate) fn forget_executor(&self, executor_key: &str) {
        let path = self.executors_dir().join(format!("{executor_key}.json"));
        let _guard = self.lock_checkpoints();
        if let Err(e) = remove(&path) {
            tracing::error!(error = %e, executor = %executor_key, "cannot remove executor checkpoint");
        }
    }

    /// Checkpoints the id the master registered the agent under.
    pub(crate) fn checkpoint_agent_id(&self, agent_id: &str) {
        let path = self.meta_dir().join("agent_id");
        if let Err(e) = write_atomic(&path, agent_id.as_bytes()) {
            tracing::error!(error = %e, "cannot checkpoint the agent id");
        }
    }

    /// The checkpointed agent id, if there is a valid one.
    pub(crate) fn load_agent_id(&self) -> Option<String> {
        fs_err::read_to_string(self.meta_dir().join("agent_id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| match api::validate_id(s) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "invalid checkpointed agent id; registering anew");
                    false
                }
            })
    }

    /// The checkpointed runs whose ids and sandbox are sane.
    pub(crate) fn load_runs(&self) -> Vec<Run> {
        let work_dir = &self.config.work_dir;
        load_dir::<Run>(&self.tasks_dir(), "task")
            .into_iter()
            .filter_map(|(path, run)| {
                let sane = run.is_sane(work_dir);
                if !sane {
                    tracing::warn!(path = %path.display(), "invalid task checkpoint; ignoring it");
                }
                sane.then_some(run)
            })
            .collect()
    }

    /// The checkpointed custom executors.
    pub(crate) fn load_executors(&self) -> Vec<Executor> {
        load_dir(&self.executors_dir(), "executor")
            .into_iter()
            .map(|(_, executor)| executor)
            .collect()
    }
}

/// Every `*.json` checkpoint of `dir` that reads as a `T`; the others are logged and skipped.
fn load_dir<T: DeserializeOwned>(dir: &Path, what: &str) -> Vec<(PathBuf, T)> {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match fs_err::read(&path).map(|b| serde_json::from_slice::<T>(&b)) {
            Ok(Ok(value)) => out.push((path, value)),
            _ => {
                tracing::warn!(path = %path.display(), "unreadable {what} checkpoint; ignoring it")
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_and_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta").join("agent_id");
        create_dir(path.parent().unwrap()).unwrap();
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("agent_id")]);
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(!path.exists());
    }
}
