//! The containerizer: what starts, watches, signals and destroys the containers that tasks
//! and custom executors run in.
//!
//! The rest of the agent (command tasks, custom executors, health checks) speaks only the
//! [`Containerizer`] interface. [`MesosContainerizer`] is the real one: a process on the host
//! (as the task's user, its URIs fetched into its sandbox first), or a task in its container
//! image as Mesos' containerizer runs it ([`crate::agent::container`]). A simulated one, whose
//! tasks need no process and just run until killed (what `dcos-bench simulate-agents` does),
//! fits the same interface: the tests' `simulated` one is.

mod fetcher;
pub(crate) mod launcher;
mod mesos;
#[cfg(test)]
pub(crate) mod simulated;

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;

use futures::future::BoxFuture;
use nix::sys::signal::Signal;

pub(crate) use mesos::MesosContainerizer;

use super::checkpoint::Process;
use crate::api::{CommandInfo, FrameworkInfo, TaskInfo};

/// Resolves once a container's leading process is gone.
pub(crate) type Exited = BoxFuture<'static, Waited>;

/// What a container runs, and where.
pub(crate) struct Launch<'a> {
    /// Its id (the run's or the executor's container id).
    pub(crate) container_id: &'a str,
    /// The framework it runs for (its user, unless the command names one).
    pub(crate) framework: &'a FrameworkInfo,
    /// What it runs: a task's command (under the built-in command executor) or a custom
    /// executor's.
    pub(crate) command: &'a CommandInfo,
    /// The task, for a command task: its container may name an image, its resources are
    /// the container's limits.
    pub(crate) task: Option<&'a TaskInfo>,
    /// The sandbox on the host (created by the containerizer if need be).
    pub(crate) sandbox: &'a Path,
    /// The environment the agent gives it.
    pub(crate) env: Vec<(String, String)>,
}

/// A started container.
pub(crate) struct Launched {
    /// Its leading process, if it has one.
    pub(crate) pid: Option<u32>,
    /// That process, identified for the checkpoint.
    pub(crate) process: Option<Process>,
    /// How it runs, for the task's TASK_RUNNING message (a Docker image run without Docker).
    pub(crate) note: Option<String>,
    /// Its end.
    pub(crate) exited: Exited,
}

/// A container as the agent records it (in a run or an executor, and their checkpoints).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Handle {
    /// Its id.
    pub(crate) container_id: String,
    /// Its leading process's pid, once started.
    pub(crate) pid: Option<u32>,
    /// That process, identified.
    pub(crate) process: Option<Process>,
}

/// How a container's leading process ended.
#[derive(Debug, Default)]
pub(crate) struct Waited {
    /// Its wait status, when the agent waited for it (not for a container it re-attached to
    /// after a restart: that one is not its child).
    pub(crate) status: Option<Result<ExitStatus, String>>,
}

/// What is known of a container once it is destroyed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Remains {
    /// Mesos' message if it ended because it hit its memory limit.
    pub(crate) limitation: Option<String>,
    /// The exit status of its command as recorded where it ran (a signal as 128 + n).
    pub(crate) recorded_exit: Option<i32>,
}

/// Why a container was not signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotSignalled {
    /// It has not started (yet).
    NotStarted,
    /// It has a process the agent cannot identify (a checkpoint from before identities):
    /// it may be another's, so it is never signalled.
    Unidentified,
    /// It is gone, or its pid now names another process.
    Gone,
}

/// The task a command health check checks.
pub(crate) struct CheckTarget<'a> {
    /// Its container.
    pub(crate) container: &'a Handle,
    /// Its framework.
    pub(crate) framework: &'a FrameworkInfo,
    /// The task.
    pub(crate) task: &'a TaskInfo,
    /// Its sandbox on the host.
    pub(crate) sandbox: &'a Path,
    /// Its environment.
    pub(crate) env: Vec<(String, String)>,
}

/// How a task's command health checks start, worked out once per task and used by every
/// attempt: what runs before a check's argv, and the environment, directory and user.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CheckCommand {
    /// What precedes the check's argv (nothing: the argv runs itself).
    pub(crate) prefix: Vec<OsString>,
    /// Its working directory.
    pub(crate) dir: Option<PathBuf>,
    /// Its whole environment.
    pub(crate) env: Vec<(String, String)>,
    /// The (uid, gid) it runs as.
    pub(crate) user: Option<(u32, u32)>,
    /// A process that must still run for a check to start (the container's).
    pub(crate) alive: Option<Process>,
}

impl CheckCommand {
    /// The process that runs one check of `argv`.
    pub(crate) fn command(&self, argv: &[String]) -> Result<tokio::process::Command, String> {
        if self.alive.as_ref().is_some_and(|p| !p.is_running()) {
            return Err("the container's process is gone".into());
        }
        let mut words = self
            .prefix
            .iter()
            .cloned()
            .chain(argv.iter().map(OsString::from));
        let program = words.next().ok_or("the health check has no command")?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(words).env_clear().envs(self.env.iter().cloned());
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        Ok(cmd)
    }
}

/// Starts, watches, signals and destroys containers.
pub(crate) trait Containerizer: Send + Sync {
    /// Starts a container; why not, in words for the task's TASK_FAILED.
    fn launch<'a>(&'a self, launch: Launch<'a>) -> BoxFuture<'a, anyhow::Result<Launched>>;

    /// Kills the container of `container_id`, just launched, that the agent will not keep
    /// (its task was killed while it started); its `exited` still resolves.
    fn abort(&self, container_id: &str, launched: &Launched);

    /// Re-attaches to a container a restarted agent finds checkpointed: its end if it still
    /// runs, None if it is gone.
    fn reattach(&self, container: &Handle) -> Option<Exited>;

    /// Signals every process of a container.
    fn signal(&self, container: &Handle, signal: Signal) -> Result<(), NotSignalled>;

    /// Destroys what is left of an ended container and says how it ended. May block
    /// (removing cgroups waits for their last processes): see [`destroy`].
    fn destroy(&self, container_id: &str, sandbox: &Path) -> Remains;

    /// Destroys every container that none of `live` names (at recovery: the agent died
    /// between making one and checkpointing its run, or its run ended while it was down).
    fn destroy_orphans(&self, live: &[&str]);

    /// How command health checks of a task run, in its container.
    fn check_command(&self, target: CheckTarget<'_>) -> Result<CheckCommand, String>;
}

/// [`Containerizer::destroy`] off the runtime's threads.
pub(crate) async fn destroy(
    containerizer: &Arc<dyn Containerizer>,
    container_id: String,
    sandbox: PathBuf,
) -> Remains {
    let containerizer = containerizer.clone();
    tokio::task::spawn_blocking(move || containerizer.destroy(&container_id, &sandbox))
        .await
        .unwrap_or_default()
}

/// How a command ended: an exit status, or the signal that ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It exited with this status.
    Status(i32),
    /// A signal ended it.
    Signal(i32),
}

impl Exit {
    /// A recorded exit status, where a shell's 128 + n means signal n.
    pub(crate) fn recorded(code: i32) -> Exit {
        if code > 128 {
            Exit::Signal(code - 128)
        } else {
            Exit::Status(code)
        }
    }

    /// A wait status.
    pub(crate) fn waited(status: ExitStatus) -> Exit {
        match status.signal() {
            Some(signal) => Exit::Signal(signal),
            None => Exit::Status(status.code().unwrap_or(-1)),
        }
    }
}

impl std::fmt::Display for Exit {
    /// Mesos' words for it in a status update.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Exit::Status(code) => write!(f, "Command exited with status {code}"),
            Exit::Signal(signal) => {
                let name = Signal::try_from(signal)
                    .map(|s| s.as_str().trim_start_matches("SIG").to_string())
                    .unwrap_or_else(|_| signal.to_string());
                write!(f, "Command terminated with signal {name}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_read_as_mesos_says_them() {
        assert_eq!(
            Exit::recorded(0).to_string(),
            "Command exited with status 0"
        );
        assert_eq!(
            Exit::recorded(3).to_string(),
            "Command exited with status 3"
        );
        assert_eq!(
            Exit::recorded(137).to_string(),
            "Command terminated with signal KILL"
        );
        assert_eq!(
            Exit::waited(ExitStatus::from_raw(15)).to_string(),
            "Command terminated with signal TERM"
        );
        assert_eq!(Exit::waited(ExitStatus::from_raw(2 << 8)), Exit::Status(2));
        assert_eq!(
            Exit::Signal(99).to_string(),
            "Command terminated with signal 99"
        );
    }

    #[test]
    fn check_commands_run_their_argv_after_the_prefix() {
        let on_host = CheckCommand {
            dir: Some("/tmp".into()),
            env: vec![("A".into(), "1".into())],
            ..CheckCommand::default()
        };
        let cmd = on_host.command(&["/bin/true".into(), "x".into()]).unwrap();
        let std = cmd.as_std();
        assert_eq!(std.get_program(), "/bin/true");
        assert_eq!(std.get_args().collect::<Vec<_>>(), ["x"]);
        assert_eq!(std.get_current_dir(), Some(Path::new("/tmp")));
        let in_container = CheckCommand {
            prefix: vec!["init".into(), "--".into()],
            ..CheckCommand::default()
        };
        let cmd = in_container.command(&["true".into()]).unwrap();
        assert_eq!(cmd.as_std().get_program(), "init");
        assert!(CheckCommand::default().command(&[]).is_err());
    }
}
