//! A simulated containerizer: its containers have no process and run until signalled, as
//! `dcos-bench simulate-agents` runs its tasks. The agent cannot tell it from the real one,
//! which is what the tests of the agent's core use it for.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Mutex;

use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::{CheckCommand, CheckTarget, Containerizer, Exited, Handle, Launch, Launched};
use super::{NotSignalled, Remains, Waited};

/// Containers that just run.
#[derive(Debug, Default)]
pub(crate) struct Simulated {
    /// The running containers, each ended by the signal sent on its channel.
    running: Mutex<BTreeMap<String, oneshot::Sender<Signal>>>,
}

impl Simulated {
    fn end(&self, container_id: &str, signal: Signal) -> Result<(), NotSignalled> {
        let running = self.running.lock().unwrap().remove(container_id);
        let sender = running.ok_or(NotSignalled::NotStarted)?;
        sender.send(signal).map_err(|_| NotSignalled::Gone)
    }

    /// How many containers run.
    pub(crate) fn running(&self) -> usize {
        self.running.lock().unwrap().len()
    }
}

impl Containerizer for Simulated {
    fn launch<'a>(&'a self, launch: Launch<'a>) -> BoxFuture<'a, anyhow::Result<Launched>> {
        let (tx, rx) = oneshot::channel::<Signal>();
        self.running
            .lock()
            .unwrap()
            .insert(launch.container_id.to_string(), tx);
        let exited: Exited = Box::pin(async move {
            let signal = rx.await.unwrap_or(Signal::SIGKILL);
            Waited {
                status: Some(Ok(ExitStatus::from_raw(signal as i32))),
            }
        });
        Box::pin(async move {
            Ok(Launched {
                pid: None,
                process: None,
                note: None,
                exited,
            })
        })
    }

    fn abort(&self, container_id: &str, _launched: &Launched) {
        let _ = self.end(container_id, Signal::SIGKILL);
    }

    fn reattach(&self, _container: &Handle) -> Option<Exited> {
        None
    }

    fn signal(&self, container: &Handle, signal: Signal) -> Result<(), NotSignalled> {
        self.end(&container.container_id, signal)
    }

    fn destroy(&self, container_id: &str, _sandbox: &Path) -> Remains {
        let _ = self.end(container_id, Signal::SIGKILL);
        Remains::default()
    }

    fn destroy_orphans(&self, _live: &[&str]) {}

    fn check_command(&self, _target: CheckTarget<'_>) -> Result<CheckCommand, String> {
        Err("a simulated task runs no command".into())
    }
}
