//! The node's unit status: written by the supervisor, served by the pkgpanda API, read by
//! `dcos node status` and by `dcos cluster up` while it waits for health.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A unit's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitState {
    /// Started, not yet accepting on its ports.
    Starting,
    /// Running and accepting on its ports.
    Running,
    /// Exited; waiting to be restarted.
    Backoff,
    /// Exited too often in a row; still retried, at the longest backoff.
    Failing,
    /// Being stopped.
    Stopping,
    /// Stopped.
    Stopped,
    /// Its component is not built yet; never started.
    NotBuilt,
    /// Not used in this configuration (for example Exhibitor with the embedded store).
    NotInUse,
    /// Its ports are privileged (dcos-net's 53) and the node does not run as root; never
    /// started.
    NeedsRoot,
}

/// One unit's status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitStatus {
    /// The systemd unit name.
    pub name: String,
    /// Its state.
    pub state: UnitState,
    /// The unit process's pid, while it runs.
    pub pid: Option<u32>,
    /// How many times the supervisor restarted it.
    pub restarts: u32,
    /// Its contract ports, `5050/tcp`.
    pub ports: Vec<String>,
    /// How it last exited, if it did.
    pub last_exit: Option<String>,
}

/// The whole node's status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's role.
    pub role: String,
    /// The node's cluster IP.
    pub ip: IpAddr,
    /// The supervisor's pid.
    pub supervisor_pid: u32,
    /// Every unit of the role, started or not.
    pub units: Vec<UnitStatus>,
}

impl NodeStatus {
    /// Whether every unit that should run is running.
    pub fn healthy(&self) -> bool {
        self.units.iter().all(|u| {
            matches!(
                u.state,
                UnitState::Running
                    | UnitState::NotBuilt
                    | UnitState::NotInUse
                    | UnitState::NeedsRoot
            )
        })
    }
}

/// The status file in a node's run dir.
pub fn status_path(run_dir: &Path) -> PathBuf {
    run_dir.join("units.json")
}

/// Writes the status atomically (a reader never sees half a file).
pub fn write(run_dir: &Path, status: &NodeStatus) -> std::io::Result<()> {
    let path = status_path(run_dir);
    let tmp = run_dir.join(".units.json.tmp");
    let text = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    fs_err::write(&tmp, text)?;
    fs_err::rename(&tmp, &path)
}

/// Reads the status file, if the supervisor has written one.
pub fn read(run_dir: &Path) -> std::io::Result<NodeStatus> {
    let text = fs_err::read(status_path(run_dir))?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}
