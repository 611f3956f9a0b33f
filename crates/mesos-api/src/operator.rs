//! The master's v1 operator API (`POST /api/v1`), typed: the [`Call`] an operator sends,
//! the [`Response`] it gets, and the [`Event`]s of its SUBSCRIBE stream. On the wire each is
//! `{"type": "GET_STATE", "get_state": {..}}`, as the scheduler API's calls and events.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::api::{wire_enum, Attribute, FrameworkInfo, Id, Resource, TaskState, TaskStatus};
use crate::wire::tagged;

wire_enum! {
    /// `master::Call::Type` (Mesos 1.5, and the later types so that they are told apart
    /// from names the protocol does not have).
    CallType {
        /// The master's health.
        GetHealth = "GET_HEALTH",
        /// Its flags.
        GetFlags = "GET_FLAGS",
        /// Its version.
        GetVersion = "GET_VERSION",
        /// Its metrics.
        GetMetrics = "GET_METRICS",
        /// Its logging level.
        GetLoggingLevel = "GET_LOGGING_LEVEL",
        /// Sets its logging level.
        SetLoggingLevel = "SET_LOGGING_LEVEL",
        /// Lists files.
        ListFiles = "LIST_FILES",
        /// Reads a file.
        ReadFile = "READ_FILE",
        /// Everything: tasks, executors, frameworks, agents.
        GetState = "GET_STATE",
        /// The agents.
        GetAgents = "GET_AGENTS",
        /// The frameworks.
        GetFrameworks = "GET_FRAMEWORKS",
        /// The executors.
        GetExecutors = "GET_EXECUTORS",
        /// Offer operations.
        GetOperations = "GET_OPERATIONS",
        /// The tasks.
        GetTasks = "GET_TASKS",
        /// The roles.
        GetRoles = "GET_ROLES",
        /// The role weights.
        GetWeights = "GET_WEIGHTS",
        /// Sets role weights.
        UpdateWeights = "UPDATE_WEIGHTS",
        /// The master itself.
        GetMaster = "GET_MASTER",
        /// Opens the event stream.
        Subscribe = "SUBSCRIBE",
        /// Reserves resources.
        ReserveResources = "RESERVE_RESOURCES",
        /// Unreserves resources.
        UnreserveResources = "UNRESERVE_RESOURCES",
        /// Creates volumes.
        CreateVolumes = "CREATE_VOLUMES",
        /// Destroys volumes.
        DestroyVolumes = "DESTROY_VOLUMES",
        /// Grows a volume.
        GrowVolume = "GROW_VOLUME",
        /// Shrinks a volume.
        ShrinkVolume = "SHRINK_VOLUME",
        /// Maintenance status.
        GetMaintenanceStatus = "GET_MAINTENANCE_STATUS",
        /// Maintenance schedule.
        GetMaintenanceSchedule = "GET_MAINTENANCE_SCHEDULE",
        /// Sets the maintenance schedule.
        UpdateMaintenanceSchedule = "UPDATE_MAINTENANCE_SCHEDULE",
        /// Starts maintenance.
        StartMaintenance = "START_MAINTENANCE",
        /// Stops maintenance.
        StopMaintenance = "STOP_MAINTENANCE",
        /// Drains an agent.
        DrainAgent = "DRAIN_AGENT",
        /// Deactivates an agent.
        DeactivateAgent = "DEACTIVATE_AGENT",
        /// Reactivates an agent.
        ReactivateAgent = "REACTIVATE_AGENT",
        /// Quotas.
        GetQuota = "GET_QUOTA",
        /// Updates quotas.
        UpdateQuota = "UPDATE_QUOTA",
        /// Sets a quota.
        SetQuota = "SET_QUOTA",
        /// Removes a quota.
        RemoveQuota = "REMOVE_QUOTA",
        /// Tears a framework down.
        Teardown = "TEARDOWN",
        /// Marks an agent gone.
        MarkAgentGone = "MARK_AGENT_GONE",
    }
}

/// An operator call. The calls the master answers carry no payload; the payloads of the
/// others are not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// What it asks.
    pub kind: CallType,
}

/// Why an operator call was refused, in Mesos' words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not JSON, not an object, or a type the protocol does not have.
    #[error("Failed to parse body into Call protobuf: {0}")]
    Parse(String),
    /// Well-formed, but not a valid call.
    #[error("Failed to validate master::Call: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct RawCall {
    #[serde(rename = "type")]
    kind: Option<CallType>,
}

impl Call {
    /// Reads a call from its JSON body.
    pub fn parse(body: &[u8]) -> Result<Call, CallError> {
        let raw: RawCall =
            serde_json::from_slice(body).map_err(|e| CallError::Parse(e.to_string()))?;
        let kind = raw
            .kind
            .ok_or_else(|| CallError::Invalid("Expecting 'type' to be present".into()))?;
        Ok(Call { kind })
    }
}

impl Serialize for Call {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        tagged::<S, ()>(s, self.kind.as_str(), &[], None)
    }
}

/// A point in time, in nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeInfo {
    /// Nanoseconds.
    pub nanoseconds: i64,
}

impl TimeInfo {
    /// Seconds since the epoch, as the master keeps times.
    pub fn from_secs(secs: f64) -> TimeInfo {
        TimeInfo {
            nanoseconds: (secs * 1e9) as i64,
        }
    }
}

/// A task (`v1::Task`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Its name.
    pub name: String,
    /// Its id.
    pub task_id: Id,
    /// Its framework.
    pub framework_id: Id,
    /// Its agent.
    pub agent_id: Id,
    /// Its executor (custom executors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    /// Its state.
    pub state: TaskState,
    /// Its resources, as launched.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Its statuses, oldest first.
    #[serde(default)]
    pub statuses: Vec<TaskStatus>,
    /// Labels, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    /// Discovery info, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Value>,
    /// Container, as given (less any secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
}

/// An agent's self-description (`v1::AgentInfo`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its hostname.
    pub hostname: String,
    /// Its port.
    pub port: u16,
    /// Its id.
    pub id: Id,
    /// Its resources.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Its attributes.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// An agent (`master::Response::GetAgents::Agent`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// What it says about itself.
    pub agent_info: AgentInfo,
    /// Whether it is connected and reachable.
    pub active: bool,
    /// Its version.
    pub version: String,
    /// `slave(1)@host:port`.
    pub pid: String,
    /// When it registered.
    pub registered_time: TimeInfo,
    /// Its total resources.
    #[serde(default)]
    pub total_resources: Vec<Resource>,
    /// What its tasks use.
    #[serde(default)]
    pub allocated_resources: Vec<Resource>,
    /// What is offered.
    #[serde(default)]
    pub offered_resources: Vec<Resource>,
}

/// A framework (`master::Response::GetFrameworks::Framework`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Framework {
    /// Its info.
    pub framework_info: FrameworkInfo,
    /// Not torn down.
    pub active: bool,
    /// Its stream is open.
    pub connected: bool,
    /// Known from an agent's report only.
    pub recovered: bool,
    /// When it registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_time: Option<TimeInfo>,
}

/// `get_tasks`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetTasks {
    /// Non-terminal tasks.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Terminal tasks.
    #[serde(default)]
    pub completed_tasks: Vec<Task>,
    /// Tasks waiting for authorization (none here).
    #[serde(default)]
    pub pending_tasks: Vec<Task>,
    /// Tasks of unknown frameworks (none here).
    #[serde(default)]
    pub orphan_tasks: Vec<Task>,
    /// Tasks on unreachable agents (listed among `tasks` here).
    #[serde(default)]
    pub unreachable_tasks: Vec<Task>,
}

/// `get_agents`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetAgents {
    /// The agents.
    #[serde(default)]
    pub agents: Vec<Agent>,
    /// Agents recovered from the registry and not re-registered yet.
    #[serde(default)]
    pub recovered_agents: Vec<AgentInfo>,
}

/// `get_frameworks`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetFrameworks {
    /// Live frameworks.
    #[serde(default)]
    pub frameworks: Vec<Framework>,
    /// Torn-down frameworks.
    #[serde(default)]
    pub completed_frameworks: Vec<Framework>,
}

/// `get_executors` (executors are not listed by this master).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetExecutors {
    /// The executors.
    #[serde(default)]
    pub executors: Vec<Value>,
}

/// `get_state`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetState {
    /// The tasks.
    pub get_tasks: GetTasks,
    /// The executors.
    pub get_executors: GetExecutors,
    /// The frameworks.
    pub get_frameworks: GetFrameworks,
    /// The agents.
    pub get_agents: GetAgents,
}

/// `get_health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetHealth {
    /// Whether the master is healthy.
    pub healthy: bool,
}

/// One flag of `get_flags`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// `get_flags`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetFlags {
    /// The flags.
    #[serde(default)]
    pub flags: Vec<Flag>,
}

/// `get_version`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetVersion {
    /// The version (kept as the master renders it).
    pub version_info: Value,
}

/// `get_master`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetMaster {
    /// The master (kept as the master renders it).
    pub master_info: Value,
    /// Seconds since the epoch.
    pub start_time: f64,
    /// Seconds since the epoch, when it was elected.
    pub elected_time: Option<f64>,
}

/// The answer to a [`Call`].
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// GET_HEALTH.
    GetHealth(GetHealth),
    /// GET_FLAGS.
    GetFlags(GetFlags),
    /// GET_VERSION.
    GetVersion(GetVersion),
    /// GET_STATE.
    GetState(Box<GetState>),
    /// GET_AGENTS.
    GetAgents(GetAgents),
    /// GET_FRAMEWORKS.
    GetFrameworks(GetFrameworks),
    /// GET_TASKS.
    GetTasks(GetTasks),
    /// GET_MASTER.
    GetMaster(GetMaster),
}

impl Response {
    /// The call type it answers.
    pub fn kind(&self) -> CallType {
        match self {
            Response::GetHealth(_) => CallType::GetHealth,
            Response::GetFlags(_) => CallType::GetFlags,
            Response::GetVersion(_) => CallType::GetVersion,
            Response::GetState(_) => CallType::GetState,
            Response::GetAgents(_) => CallType::GetAgents,
            Response::GetFrameworks(_) => CallType::GetFrameworks,
            Response::GetTasks(_) => CallType::GetTasks,
            Response::GetMaster(_) => CallType::GetMaster,
        }
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind().as_str();
        match self {
            Response::GetHealth(p) => tagged(s, kind, &[], Some(p)),
            Response::GetFlags(p) => tagged(s, kind, &[], Some(p)),
            Response::GetVersion(p) => tagged(s, kind, &[], Some(p)),
            Response::GetState(p) => tagged(s, kind, &[], Some(p)),
            Response::GetAgents(p) => tagged(s, kind, &[], Some(p)),
            Response::GetFrameworks(p) => tagged(s, kind, &[], Some(p)),
            Response::GetTasks(p) => tagged(s, kind, &[], Some(p)),
            Response::GetMaster(p) => tagged(s, kind, &[], Some(p)),
        }
    }
}

wire_enum! {
    /// `master::Event::Type`.
    EventType {
        /// The stream is open: a snapshot of the state.
        Subscribed = "SUBSCRIBED",
        /// A task was launched.
        TaskAdded = "TASK_ADDED",
        /// A task's state changed.
        TaskUpdated = "TASK_UPDATED",
        /// An agent registered.
        AgentAdded = "AGENT_ADDED",
        /// An agent is gone.
        AgentRemoved = "AGENT_REMOVED",
        /// A framework subscribed.
        FrameworkAdded = "FRAMEWORK_ADDED",
        /// A framework changed.
        FrameworkUpdated = "FRAMEWORK_UPDATED",
        /// A framework was removed.
        FrameworkRemoved = "FRAMEWORK_REMOVED",
        /// Keep-alive.
        Heartbeat = "HEARTBEAT",
    }
}

/// `subscribed`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The state when the stream opened.
    pub get_state: GetState,
    /// How often the master heartbeats the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<f64>,
}

/// `task_added`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskAdded {
    /// The task.
    pub task: Task,
}

/// `task_updated`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskUpdated {
    /// The task's framework.
    pub framework_id: Id,
    /// The status that changed it.
    pub status: TaskStatus,
    /// Its state now.
    pub state: TaskState,
}

/// `agent_added`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentAdded {
    /// The agent.
    pub agent: Agent,
}

/// `agent_removed`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentRemoved {
    /// The agent.
    pub agent_id: Id,
}

/// `framework_added` / `framework_updated`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameworkAdded {
    /// The framework.
    pub framework: Framework,
}

/// `framework_removed`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameworkRemoved {
    /// The framework.
    pub framework_info: FrameworkInfo,
}

/// An event of the operator stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// SUBSCRIBED.
    Subscribed(Box<Subscribed>),
    /// TASK_ADDED.
    TaskAdded(Box<TaskAdded>),
    /// TASK_UPDATED.
    TaskUpdated(Box<TaskUpdated>),
    /// AGENT_ADDED.
    AgentAdded(Box<AgentAdded>),
    /// AGENT_REMOVED.
    AgentRemoved(AgentRemoved),
    /// FRAMEWORK_ADDED.
    FrameworkAdded(Box<FrameworkAdded>),
    /// FRAMEWORK_UPDATED.
    FrameworkUpdated(Box<FrameworkAdded>),
    /// FRAMEWORK_REMOVED.
    FrameworkRemoved(Box<FrameworkRemoved>),
    /// HEARTBEAT.
    Heartbeat,
}

impl Event {
    /// The event's type.
    pub fn kind(&self) -> EventType {
        match self {
            Event::Subscribed(_) => EventType::Subscribed,
            Event::TaskAdded(_) => EventType::TaskAdded,
            Event::TaskUpdated(_) => EventType::TaskUpdated,
            Event::AgentAdded(_) => EventType::AgentAdded,
            Event::AgentRemoved(_) => EventType::AgentRemoved,
            Event::FrameworkAdded(_) => EventType::FrameworkAdded,
            Event::FrameworkUpdated(_) => EventType::FrameworkUpdated,
            Event::FrameworkRemoved(_) => EventType::FrameworkRemoved,
            Event::Heartbeat => EventType::Heartbeat,
        }
    }

    /// Reads an event from its JSON form.
    pub fn parse(bytes: &[u8]) -> Result<Event, String> {
        let raw: RawEvent = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let missing = || {
            format!(
                "Expecting '{}' to be present",
                raw.kind.as_str().to_ascii_lowercase()
            )
        };
        Ok(match raw.kind {
            EventType::Subscribed => Event::Subscribed(raw.subscribed.ok_or_else(missing)?),
            EventType::TaskAdded => Event::TaskAdded(raw.task_added.ok_or_else(missing)?),
            EventType::TaskUpdated => Event::TaskUpdated(raw.task_updated.ok_or_else(missing)?),
            EventType::AgentAdded => Event::AgentAdded(raw.agent_added.ok_or_else(missing)?),
            EventType::AgentRemoved => Event::AgentRemoved(raw.agent_removed.ok_or_else(missing)?),
            EventType::FrameworkAdded => {
                Event::FrameworkAdded(raw.framework_added.ok_or_else(missing)?)
            }
            EventType::FrameworkUpdated => {
                Event::FrameworkUpdated(raw.framework_updated.ok_or_else(missing)?)
            }
            EventType::FrameworkRemoved => {
                Event::FrameworkRemoved(raw.framework_removed.ok_or_else(missing)?)
            }
            EventType::Heartbeat => Event::Heartbeat,
        })
    }
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: EventType,
    subscribed: Option<Box<Subscribed>>,
    task_added: Option<Box<TaskAdded>>,
    task_updated: Option<Box<TaskUpdated>>,
    agent_added: Option<Box<AgentAdded>>,
    agent_removed: Option<AgentRemoved>,
    framework_added: Option<Box<FrameworkAdded>>,
    framework_updated: Option<Box<FrameworkAdded>>,
    framework_removed: Option<Box<FrameworkRemoved>>,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind().as_str();
        match self {
            Event::Subscribed(p) => tagged(s, kind, &[], Some(p)),
            Event::TaskAdded(p) => tagged(s, kind, &[], Some(p)),
            Event::TaskUpdated(p) => tagged(s, kind, &[], Some(p)),
            Event::AgentAdded(p) => tagged(s, kind, &[], Some(p)),
            Event::AgentRemoved(p) => tagged(s, kind, &[], Some(p)),
            Event::FrameworkAdded(p) | Event::FrameworkUpdated(p) => tagged(s, kind, &[], Some(p)),
            Event::FrameworkRemoved(p) => tagged(s, kind, &[], Some(p)),
            Event::Heartbeat => tagged::<S, ()>(s, kind, &[], None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_parse_with_mesos_errors() {
        assert_eq!(
            Call::parse(br#"{"type": "GET_STATE"}"#),
            Ok(Call {
                kind: CallType::GetState
            })
        );
        assert_eq!(
            Call::parse(
                br#"{"type": "GET_METRICS", "get_metrics": {"timeout": {"nanoseconds": 5}}}"#
            ),
            Ok(Call {
                kind: CallType::GetMetrics
            })
        );
        assert_eq!(
            Call::parse(b"{}"),
            Err(CallError::Invalid("Expecting 'type' to be present".into()))
        );
        assert_eq!(
            Call::parse(b"{}").unwrap_err().to_string(),
            "Failed to validate master::Call: Expecting 'type' to be present"
        );
        assert!(matches!(
            Call::parse(br#"{"type": "FLY"}"#),
            Err(CallError::Parse(_))
        ));
        assert!(matches!(Call::parse(b"[1]"), Err(CallError::Parse(_))));
        assert!(matches!(Call::parse(b"{"), Err(CallError::Parse(_))));
        let call = Call {
            kind: CallType::Subscribe,
        };
        assert_eq!(
            serde_json::to_value(call).unwrap(),
            json!({"type": "SUBSCRIBE"})
        );
    }

    #[test]
    fn events_and_responses_have_the_wire_shape() {
        let wires = [
            json!({"type": "HEARTBEAT"}),
            json!({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "a"}}}),
            json!({"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": "f"}, "status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING"}, "state": "TASK_RUNNING"}}),
            json!({"type": "FRAMEWORK_REMOVED", "framework_removed": {"framework_info": {"user": "u", "name": "n"}}}),
        ];
        for wire in wires {
            let event = Event::parse(&serde_json::to_vec(&wire).unwrap()).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), wire);
        }
        assert!(Event::parse(br#"{"type": "TASK_ADDED"}"#).is_err());
        let health = Response::GetHealth(GetHealth { healthy: true });
        assert_eq!(
            serde_json::to_value(health).unwrap(),
            json!({"type": "GET_HEALTH", "get_health": {"healthy": true}})
        );
        let state = Response::GetState(Box::default());
        assert_eq!(
            serde_json::to_value(state).unwrap()["get_state"]["get_tasks"]["pending_tasks"],
            json!([])
        );
    }
}
