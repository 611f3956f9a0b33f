//! How the agent knows a checkpointed process is still the one it started.
//!
//! A pid alone does not name a process: after the agent restarts (worse, after the host
//! reboots) the pid of a task may belong to an unrelated process. So the agent records the
//! boot id and the process's start time (`/proc/<pid>/stat` field 22) at launch and checks
//! both before it re-attaches to a process or signals its group.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::agent::procfs::Stat;

/// A process the agent started, identified beyond its pid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Process {
    /// Its pid, also its process group id (tasks run in their own group).
    pub(crate) pid: u32,
    /// When it started, in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub(crate) start_time: u64,
    /// The boot it ran in (`/proc/sys/kernel/random/boot_id`).
    pub(crate) boot_id: String,
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
    pub(crate) fn of(pid: u32) -> Option<Process> {
        Some(Process {
            pid,
            start_time: Stat::of(pid)?.start_time,
            boot_id: boot_id()?,
        })
    }

    fn same_boot(&self) -> bool {
        boot_id().is_some_and(|b| b == self.boot_id)
    }

    /// Whether it still runs: same boot, same start time, not a zombie.
    pub(crate) fn is_running(&self) -> bool {
        self.same_boot()
            && Stat::of(self.pid).is_some_and(|s| s.start_time == self.start_time && !s.is_dead())
    }

    /// Whether its process group may be signalled: same boot, and the pid is either still
    /// this process or free. A free pid is safe: while any member of the group lives the
    /// kernel reuses neither the group id nor the pid, so a group of that id is still ours.
    fn may_signal_group(&self) -> bool {
        self.same_boot() && Stat::of(self.pid).is_none_or(|s| s.start_time == self.start_time)
    }

    /// Signals its process group, unless the pid now names another process; false if not sent.
    pub(crate) fn signal_group(&self, signal: Signal) -> bool {
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
