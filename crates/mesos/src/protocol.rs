//! The master <-> agent protocol.
//!
//! Real Mesos agents speak libprocess messages to the master; dcos-rs agents speak JSON over
//! HTTP in the style of the v1 scheduler API: an agent POSTs a SUBSCRIBE call to the master's
//! `/api/v1/agent` and holds the RecordIO stream of [`AgentEvent`]s it gets back; status
//! updates go up as UPDATE calls. The stream is the liveness signal: the master heartbeats
//! it, and either side treats its loss as the other being gone. Simulated agents speak the
//! same protocol, so the master cannot tell them from real ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::{FrameworkInfo, Id, Resource, TaskInfo, TaskState, TaskStatus};

/// The master path agents use.
pub const AGENT_API_PATH: &str = "/api/v1/agent";

/// What an agent tells the master about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its hostname (dcos-rs uses the node IP, as DC/OS does).
    pub hostname: String,
    /// The agent API port (5051).
    pub port: u16,
    /// Total resources.
    pub resources: Vec<Resource>,
    /// Text attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Its version.
    #[serde(default)]
    pub version: String,
}

/// A task the agent already runs, reported when it (re-)subscribes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// The task's framework, as the agent checkpointed it.
    pub framework: FrameworkInfo,
    /// The task.
    pub task: TaskInfo,
    /// Its latest state.
    pub state: TaskState,
    /// Its latest status.
    pub status: Option<TaskStatus>,
}

/// A call from agent to master.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentCall {
    /// Register (no `agent_id`) or re-register, opening the event stream.
    Subscribe {
        /// The id from an earlier registration.
        agent_id: Option<Id>,
        /// The agent.
        info: AgentInfo,
        /// Tasks it runs.
        #[serde(default)]
        tasks: Vec<TaskReport>,
    },
    /// A task status update; the master forwards it and relays the acknowledgement.
    Update {
        /// The agent.
        agent_id: Id,
        /// The task's framework.
        framework_id: Id,
        /// The status (with a uuid: it must be acknowledged).
        status: TaskStatus,
    },
    /// A message from an executor to its framework's scheduler.
    Message {
        /// The agent.
        agent_id: Id,
        /// The framework.
        framework_id: Id,
        /// The executor that sent it.
        executor_id: Id,
        /// Base64 data, as the executor sent it.
        data: String,
    },
}

/// An event from master to agent.
#[expect(
    clippy::large_enum_variant,
    reason = "events are moved through a channel once; boxing would only add an allocation"
)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentEvent {
    /// The agent is registered under `agent_id`.
    Registered {
        /// The id to use from now on.
        agent_id: Id,
        /// The master's id.
        master_id: String,
    },
    /// Launch a task.
    RunTask {
        /// Its framework (with `id`).
        framework: FrameworkInfo,
        /// The task.
        task: TaskInfo,
    },
    /// Kill a task.
    KillTask {
        /// Its framework.
        framework_id: Id,
        /// The task.
        task_id: Id,
        /// Overrides the task's grace period.
        grace_period_ns: Option<i64>,
    },
    /// The framework acknowledged an update.
    Acknowledge {
        /// The framework.
        framework_id: Id,
        /// The task.
        task_id: Id,
        /// The update's uuid.
        uuid: String,
    },
    /// The framework is gone: kill its tasks.
    ShutdownFramework {
        /// The framework.
        framework_id: Id,
    },
    /// A framework message for an executor.
    FrameworkMessage {
        /// The framework.
        framework_id: Id,
        /// The executor.
        executor_id: Id,
        /// Base64 data.
        data: String,
    },
    /// Keep-alive.
    Heartbeat,
}
