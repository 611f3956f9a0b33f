//! The real containerizer, as Mesos' (DC/OS' Universal Container Runtime): a command runs
//! as a process group on the host, as its user, in its sandbox (`launcher`), its URIs
//! fetched first (`fetcher`); a task whose container names an image runs in it
//! ([`crate::agent::container`]), its memory watched and its container destroyed with
//! nothing left once it ends.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use nix::sys::signal::{killpg, Signal};

use super::fetcher::Fetcher;
use super::{launcher, CheckCommand, CheckTarget, Containerizer, Exited, Handle, Launch};
use super::{Launched, NotSignalled, Remains, Waited};
use crate::agent::checkpoint::Process;
use crate::agent::container::{self, Container, ImageRequest};
use crate::agent::{procfs, Config};

/// How often a re-attached container's process is looked for.
const REATTACHED_POLL: Duration = Duration::from_millis(500);
/// The PATH of commands on the host when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Processes on the host and tasks in images.
pub(crate) struct MesosContainerizer {
    config: Arc<Config>,
    fetcher: Fetcher,
}

impl MesosContainerizer {
    /// The containerizer of the agent of `config`.
    pub(crate) fn new(config: Arc<Config>) -> MesosContainerizer {
        let fetcher = Fetcher::new(config.fetch_allowed_dirs.clone(), config.fetch_max_bytes);
        MesosContainerizer { config, fetcher }
    }

    /// The `dcos` binary whose `container-init` runs containers (and checks inside them).
    fn init_binary(&self) -> std::io::Result<PathBuf> {
        match &self.config.container_init {
            Some(path) => Ok(path.clone()),
            None => std::env::current_exe(),
        }
    }

    /// Starts a command: its user resolved, its URIs fetched, then its process (in its
    /// image's container if it names one).
    async fn start(&self, launch: Launch<'_>) -> anyhow::Result<Launched> {
        let image = match launch.task {
            Some(task) => container::image_of(task).map_err(anyhow::Error::msg)?,
            None => None,
        };
        let user = launcher::requested_user(launch.framework, launch.command);
        // A container's user is one of its image, not of the host.
        let run_as = match image {
            Some(_) => None,
            None => launcher::run_as(self.config.switch_user, user)?,
        };
        self.fetcher
            .fetch_uris(launch.command, launch.sandbox)
            .await?;
        let child = match (&image, launch.task) {
            (Some(image), Some(task)) => {
                let init = self.init_binary()?;
                let request = container::Launch {
                    work_dir: &self.config.work_dir,
                    images: self.config.images.as_ref(),
                    init: &init,
                    container_id: launch.container_id,
                    task,
                    user: user.filter(|_| self.config.switch_user),
                    sandbox: launch.sandbox,
                    env: launch.env,
                };
                container::launch(request, image).await?
            }
            _ => launcher::spawn_command(
                launch.command,
                launch.sandbox,
                launch.env,
                run_as.as_ref(),
            )?,
        };
        let pid = child.id();
        tracing::info!(container = %launch.container_id, pid, user = user.unwrap_or_default(), "container started");
        Ok(Launched {
            pid,
            process: pid.and_then(Process::of),
            note: image
                .filter(|i: &ImageRequest| i.docker)
                .map(|_| container::DOCKER_ON_UCR.to_string()),
            exited: self.watch_child(child, launch.container_id),
        })
    }

    /// The end of a child the agent started: it exits, or its container hits its memory
    /// limit and is killed whole.
    fn watch_child(&self, mut child: tokio::process::Child, container_id: &str) -> Exited {
        let work_dir = self.config.work_dir.clone();
        let container_id = container_id.to_string();
        Box::pin(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                () = container::memory_limit_hit(&work_dir, &container_id) => {
                    // The whole container goes: its init leads the process group, and the
                    // kernel ends every process of a pid namespace whose init dies.
                    tracing::info!(container = %container_id, "container hit its memory limit; destroying it");
                    if let Some(pid) = child.id() {
                        let _ = killpg(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
                    }
                    child.wait().await
                }
            };
            Waited {
                status: Some(status.map_err(|e| e.to_string())),
            }
        })
    }

    /// The end of a process the agent re-attached to: polled, as it is not the agent's child.
    fn watch_process(&self, process: Process, container_id: &str) -> Exited {
        let work_dir = self.config.work_dir.clone();
        let container_id = container_id.to_string();
        Box::pin(async move {
            let gone = async {
                while process.is_running() {
                    tokio::time::sleep(REATTACHED_POLL).await;
                }
            };
            tokio::select! {
                () = gone => {}
                () = container::memory_limit_hit(&work_dir, &container_id) => {
                    tracing::info!(container = %container_id, "container hit its memory limit; destroying it");
                    process.signal_group(Signal::SIGKILL);
                    while process.is_running() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            Waited::default()
        })
    }

    /// Checks run in the task's container as its task runs there (its cgroups, namespaces,
    /// root, user, capabilities and environment, from its sandbox), through the container
    /// init's `exec` mode (`dcos container-init --exec-in <init> --parent <unshare>`).
    fn check_in_container(
        &self,
        target: &CheckTarget<'_>,
        container: &Container,
    ) -> Result<CheckCommand, String> {
        let unshare = target
            .container
            .process
            .as_ref()
            .filter(|p| p.is_running())
            .ok_or("the container's process is gone")?;
        let init = procfs::child_of(unshare.pid).ok_or("the container has no init")?;
        let binary = self.init_binary().map_err(|e| e.to_string())?;
        let prefix: Vec<OsString> = vec![
            binary.into(),
            "container-init".into(),
            container.dir.join("spec.json").into(),
            "--exec-in".into(),
            init.to_string().into(),
            "--parent".into(),
            unshare.pid.to_string().into(),
            "--".into(),
        ];
        Ok(CheckCommand {
            prefix,
            alive: Some(unshare.clone()),
            ..CheckCommand::default()
        })
    }

    /// Checks run on the host as the task's user, in its sandbox, with its environment.
    fn check_on_host(&self, target: CheckTarget<'_>) -> Result<CheckCommand, String> {
        let task_command = target.task.command.clone().unwrap_or_default();
        let user = launcher::requested_user(target.framework, &task_command);
        let run_as = launcher::run_as(self.config.switch_user, user).map_err(|e| e.to_string())?;
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into());
        let mut env = vec![("PATH".to_string(), path)];
        env.extend(target.env);
        Ok(CheckCommand {
            dir: Some(target.sandbox.to_path_buf()),
            env,
            user: run_as.map(|u| (u.uid, u.gid)),
            ..CheckCommand::default()
        })
    }
}

impl Containerizer for MesosContainerizer {
    fn launch<'a>(&'a self, launch: Launch<'a>) -> BoxFuture<'a, anyhow::Result<Launched>> {
        Box::pin(self.start(launch))
    }

    fn abort(&self, _container_id: &str, launched: &Launched) {
        // Not yet reaped (its `exited` is not done), so the pid is still the child's.
        if let Some(pid) = launched.pid {
            let _ = killpg(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    fn reattach(&self, container: &Handle) -> Option<Exited> {
        let process = container.process.clone().filter(Process::is_running)?;
        Some(self.watch_process(process, &container.container_id))
    }

    fn signal(&self, container: &Handle, signal: Signal) -> Result<(), NotSignalled> {
        match (&container.process, container.pid) {
            (Some(process), _) if process.signal_group(signal) => Ok(()),
            (Some(_), _) => Err(NotSignalled::Gone),
            (None, Some(_)) => Err(NotSignalled::Unidentified),
            (None, None) => Err(NotSignalled::NotStarted),
        }
    }

    fn destroy(&self, container_id: &str, sandbox: &Path) -> Remains {
        let (limitation, exit) = container::finish(
            &self.config.work_dir,
            container_id,
            self.config.images.as_ref(),
        );
        let recorded_exit = exit.or_else(|| {
            // A refused task has no sandbox to read.
            Some(sandbox)
                .filter(|s| !s.as_os_str().is_empty())
                .and_then(launcher::recorded_exit)
        });
        Remains {
            limitation,
            recorded_exit,
        }
    }

    fn destroy_orphans(&self, live: &[&str]) {
        container::destroy_orphans(&self.config.work_dir, live, self.config.images.as_ref());
    }

    fn check_command(&self, target: CheckTarget<'_>) -> Result<CheckCommand, String> {
        // A task in an image is checked in its container or not at all, never on the host.
        let in_image = container::image_of(target.task).ok().flatten().is_some();
        match Container::load(&self.config.work_dir, &target.container.container_id) {
            Some(container) => self.check_in_container(&target, &container),
            None if in_image => Err("the task's container is gone".into()),
            None => self.check_on_host(target),
        }
    }
}
