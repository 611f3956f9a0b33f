//! What the agent keeps on disk across restarts, and how it knows a checkpointed process is
//! still the one it started.
//!
//! Every checkpoint is written atomically and durably (`dcos_store::file`): a fresh temporary file beside the
//! target, fsynced, renamed over it, and the directory fsynced, so a crash or power loss
//! leaves either the old or the new content, never a torn file or a lost rename.
//!
//! A pid alone does not name a process: after the agent restarts (worse, after the host
//! reboots) the pid of a task may belong to an unrelated process. So the agent records the
//! boot id and the process's start time (`/proc/<pid>/stat` field 22) at launch and checks
//! both before it re-attaches to a process or signals its group.

use std::io;
use std::path::Path;

use dcos_store::file::sync_dir;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Replaces `path` with `bytes` atomically and durably; only the agent (root) reads them:
/// task checkpoints hold every TaskInfo with its environment.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    dcos_store::file::write_atomic(path, bytes, 0o600)
}

/// Removes `path` durably; a file already gone is fine.
pub(super) fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and its parents) durably: the new entry survives a crash.
pub(super) fn create_dir(dir: &Path) -> io::Result<()> {
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

/// A process the agent started, identified beyond its pid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Process {
    /// Its pid, also its process group id (tasks run in their own group).
    pub(super) pid: u32,
    /// When it started, in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub(super) start_time: u64,
    /// The boot it ran in (`/proc/sys/kernel/random/boot_id`).
    pub(super) boot_id: String,
}

/// What `/proc/<pid>/stat` says: (state, start time).
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // `rest` starts at field 3, so field 22 is index 19.
    let start_time = fields.get(19)?.parse().ok()?;
    Some((state, start_time))
}

/// This boot's id, read once: it changes only with a reboot, and recovered processes are
/// checked against it every half second.
fn boot_id() -> Option<String> {
    static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .clone()
}

impl Process {
    /// Identifies a process the agent just started (before it is reaped).
    pub(super) fn of(pid: u32) -> Option<Process> {
        let (_, start_time) = stat(pid)?;
        Some(Process {
            pid,
            start_time,
            boot_id: boot_id()?,
        })
    }

    fn same_boot(&self) -> bool {
        boot_id().is_some_and(|b| b == self.boot_id)
    }

    /// Whether it still runs: same boot, same start time, not a zombie.
    pub(super) fn is_running(&self) -> bool {
        self.same_boot()
            && stat(self.pid).is_some_and(|(state, start)| {
                start == self.start_time && state != 'Z' && state != 'X'
            })
    }

    /// Whether its process group may be signalled: same boot, and the pid is either still
    /// this process or free. A free pid is safe: while any member of the group lives the
    /// kernel reuses neither the group id nor the pid, so a group of that id is still ours.
    fn may_signal_group(&self) -> bool {
        self.same_boot() && stat(self.pid).is_none_or(|(_, start)| start == self.start_time)
    }

    /// Signals its process group, unless the pid now names another process; false if not sent.
    pub(super) fn signal_group(&self, signal: Signal) -> bool {
        if !self.may_signal_group() {
            tracing::warn!(
                pid = self.pid,
                "not signalling: the pid now belongs to another process"
            );
            return false;
        }
        killpg(Pid::from_raw(self.pid as i32), signal).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

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

    #[test]
    fn a_process_is_known_by_its_start_time_and_boot() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let me = Process::of(child.id()).expect("the child's identity");
        assert!(me.is_running());
        assert!(me.may_signal_group());
        // The same pid, started at another time: a reused pid, not ours.
        let reused = Process {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!reused.is_running());
        assert!(!reused.signal_group(Signal::SIGKILL));
        // Recorded in another boot: nothing of it survived the reboot.
        let rebooted = Process {
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            ..me.clone()
        };
        assert!(!rebooted.is_running());
        assert!(!rebooted.signal_group(Signal::SIGKILL));
        assert!(
            child.try_wait().unwrap().is_none(),
            "refused signals must not reach the process"
        );
        assert!(me.signal_group(Signal::SIGKILL));
        child.wait().unwrap();
        // Reaped: the pid is free, so the identity no longer runs.
        assert!(!me.is_running());
    }
}
