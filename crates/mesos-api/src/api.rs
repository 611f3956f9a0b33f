//! Wire types of the Mesos v1 HTTP API in its JSON form (protobuf field names, enums as
//! strings). Fields this implementation does not interpret are kept as raw JSON so they are
//! echoed back unchanged (container, health_check, labels, discovery, ...).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"value": "..."}`, the shape of every Mesos id. Parsing one from JSON validates it as
/// Mesos does ([`validate_id`]): ids name sandbox directories and checkpoint files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawId")]
pub struct Id {
    /// The id.
    pub value: String,
}

#[derive(Deserialize)]
struct RawId {
    value: String,
}

impl TryFrom<RawId> for Id {
    type Error = InvalidId;

    fn try_from(raw: RawId) -> Result<Id, InvalidId> {
        Id::parse(raw.value)
    }
}

impl Id {
    /// Wraps a string the caller made itself (a generated id); ids from a request go through
    /// [`Id::parse`].
    pub fn new(value: impl Into<String>) -> Id {
        Id {
            value: value.into(),
        }
    }

    /// An id from outside, validated as Mesos validates ids.
    pub fn parse(value: impl Into<String>) -> Result<Id, InvalidId> {
        let value = value.into();
        validate_id(&value)?;
        Ok(Id { value })
    }
}

impl Id {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value)
    }
}

/// The longest id Mesos accepts (`NAME_MAX`: an id is a directory name).
pub const MAX_ID_LEN: usize = 255;

/// Why an id was refused, in Mesos' words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// `""`.
    #[error("ID must not be empty")]
    Empty,
    /// Longer than [`MAX_ID_LEN`] bytes.
    #[error("ID must not be greater than 255 characters")]
    TooLong,
    /// `.` or `..`.
    #[error("'{0}' is disallowed")]
    PathComponent(String),
    /// A control character or a path separator.
    #[error("'{0}' contains invalid characters")]
    Characters(String),
}

/// Mesos' rules for every id (`common/validation.cpp`): not empty, at most 255 bytes, not `.`
/// or `..`, no control characters and no `/` or `\`, because ids become directory and file
/// names in the agent's work dir.
pub fn validate_id(id: &str) -> Result<(), InvalidId> {
    if id.is_empty() {
        return Err(InvalidId::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(InvalidId::TooLong);
    }
    if id == "." || id == ".." {
        return Err(InvalidId::PathComponent(id.to_string()));
    }
    if id.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(InvalidId::Characters(id.escape_debug().to_string()));
    }
    Ok(())
}

/// A scalar value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scalar {
    /// The value.
    pub value: f64,
}

/// One inclusive range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// First value.
    pub begin: u64,
    /// Last value.
    pub end: u64,
}

/// A list of ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges {
    /// The ranges.
    #[serde(default)]
    pub range: Vec<Range>,
}

/// A set of strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Set {
    /// The items.
    #[serde(default)]
    pub item: Vec<String>,
}

/// A resource (`cpus`, `mem`, `disk`, `gpus`, `ports`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// The resource's name.
    pub name: String,
    /// `SCALAR`, `RANGES` or `SET`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For scalars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    /// For ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Ranges>,
    /// For sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Set>,
    /// The (pre-1.5 style) role; `*` is unreserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The role the resource is allocated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
}

/// `{"role": "*"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationInfo {
    /// The role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// An agent attribute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// Its name.
    pub name: String,
    /// `TEXT` (what dcos-rs produces), `SCALAR`, `RANGES` or `SET`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `TEXT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
    /// For `SCALAR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    /// For `RANGES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Ranges>,
    /// For `SET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Set>,
}

impl Attribute {
    /// The value as constraints compare it: the text, or a scalar's number as Marathon
    /// prints it (`2` for 2.0, `1.5`); ranges and sets have none.
    pub fn value_text(&self) -> Option<String> {
        if let Some(t) = &self.text {
            return Some(t.value.clone());
        }
        self.scalar.as_ref().map(|s| s.value.to_string())
    }
}

/// `{"value": "..."}` for text attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    /// The text.
    pub value: String,
}

/// A framework's self-description.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    /// The user tasks run as.
    #[serde(default)]
    pub user: String,
    /// The framework's name.
    #[serde(default)]
    pub name: String,
    /// Set when re-subscribing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// Seconds the master waits for a disconnected framework before tearing it down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_timeout: Option<f64>,
    /// Whether its tasks are checkpointed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    /// Its role (single-role frameworks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Its roles (MULTI_ROLE frameworks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Its host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Its principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Its web UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webui_url: Option<String>,
    /// Its capabilities, kept as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Value>,
    /// Its labels, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
}

impl FrameworkInfo {
    /// The roles the framework subscribes with (`*` when none).
    pub fn all_roles(&self) -> Vec<String> {
        if !self.roles.is_empty() {
            self.roles.clone()
        } else {
            vec![self.role.clone().unwrap_or_else(|| "*".into())]
        }
    }
}

/// `{"name": .., "value": ..}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// Its value (secrets are not supported in OSS).
    #[serde(default)]
    pub value: String,
    /// `VALUE` or `SECRET`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A task's environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// The variables.
    #[serde(default)]
    pub variables: Vec<Variable>,
}

/// A URI the fetcher puts in the sandbox.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Uri {
    /// The URI (a local path or http URL).
    pub value: String,
    /// chmod +x after fetching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<bool>,
    /// Extract archives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<bool>,
    /// Keep a cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// The name to save it as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
}

/// What to run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// The command (a shell line, or the program when `shell` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Run through `/bin/sh -c` (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<bool>,
    /// argv when `shell` is false.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    /// Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Files to fetch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<Uri>,
    /// The user to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A custom executor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// `DEFAULT` or `CUSTOM`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its id.
    pub executor_id: Id,
    /// Its framework.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<Id>,
    /// What runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    /// Its own resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its container, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
}

/// A duration in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationInfo {
    /// Nanoseconds.
    pub nanoseconds: i64,
}

/// How a task is killed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillPolicy {
    /// Time between SIGTERM and SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationInfo>,
}

/// A task to launch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Its name.
    pub name: String,
    /// Its id.
    pub task_id: Id,
    /// The agent it runs on.
    pub agent_id: Id,
    /// Its resources.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// A custom executor (absent: the built-in command executor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorInfo>,
    /// The command (command tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    /// Opaque data for the executor (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Kill policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    /// Container, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    /// Health check, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Value>,
    /// Check, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Value>,
    /// Labels, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    /// Discovery info (named ports), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Value>,
}

/// An enum of the wire protocol: written and read as its protobuf name (`TASK_RUNNING`), and a
/// name the protocol does not have is refused when a message is parsed, as protobuf's JSON
/// parser refuses it.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal $(| $alias:literal)*,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire $(, alias = $alias)*)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The protobuf name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::api::UnknownName;

            fn from_str(s: &str) -> Result<$name, $crate::api::UnknownName> {
                match s {
                    $($wire $(| $alias)* => Ok($name::$variant),)*
                    other => Err($crate::api::UnknownName(other.escape_debug().to_string())),
                }
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
pub(crate) use wire_enum;

/// A name that is not one of an enum's protobuf names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Failed to find enum for '{0}'")]
pub struct UnknownName(pub String);

wire_enum! {
    /// A task's state (`mesos.proto`'s `TaskState`).
    #[derive(Default)]
    TaskState {
        /// Accepted by the master, not yet started by the agent.
        #[default]
        Staging = "TASK_STAGING",
        /// The executor is starting it.
        Starting = "TASK_STARTING",
        /// Running.
        Running = "TASK_RUNNING",
        /// Being killed (frameworks with the TASK_KILLING_STATE capability).
        Killing = "TASK_KILLING",
        /// Ended on its own with status 0.
        Finished = "TASK_FINISHED",
        /// Ended with a failure.
        Failed = "TASK_FAILED",
        /// Killed.
        Killed = "TASK_KILLED",
        /// Its description was invalid.
        Error = "TASK_ERROR",
        /// Lost (frameworks that are not partition aware).
        Lost = "TASK_LOST",
        /// Never started for a transient reason.
        Dropped = "TASK_DROPPED",
        /// Its agent is out of contact; it may still run.
        Unreachable = "TASK_UNREACHABLE",
        /// Its agent is gone for good.
        Gone = "TASK_GONE",
        /// An operator marked its agent gone.
        GoneByOperator = "TASK_GONE_BY_OPERATOR",
        /// The master knows nothing of it.
        Unknown = "TASK_UNKNOWN",
    }
}

impl TaskState {
    /// Whether the task has ended: its resources are free and it never runs again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Error
                | TaskState::Lost
                | TaskState::Dropped
                | TaskState::Gone
                | TaskState::GoneByOperator
        )
    }
}

wire_enum! {
    /// Who sent a status update.
    Source {
        /// The master.
        Master = "SOURCE_MASTER",
        /// The agent.
        Agent = "SOURCE_AGENT" | "SOURCE_SLAVE",
        /// The executor.
        Executor = "SOURCE_EXECUTOR",
    }
}

wire_enum! {
    /// Why a task is in its state (`TaskStatus.Reason` of Mesos 1.5's v1 API; the v0 `SLAVE`
    /// names are read as their `AGENT` equivalents).
    Reason {
        /// The command executor failed.
        CommandExecutorFailed = "REASON_COMMAND_EXECUTOR_FAILED",
        /// The container could not be launched.
        ContainerLaunchFailed = "REASON_CONTAINER_LAUNCH_FAILED",
        /// The container hit a limit.
        ContainerLimitation = "REASON_CONTAINER_LIMITATION",
        /// The container hit its disk limit.
        ContainerLimitationDisk = "REASON_CONTAINER_LIMITATION_DISK",
        /// The container hit its memory limit.
        ContainerLimitationMemory = "REASON_CONTAINER_LIMITATION_MEMORY",
        /// The container was preempted.
        ContainerPreempted = "REASON_CONTAINER_PREEMPTED",
        /// The container could not be updated.
        ContainerUpdateFailed = "REASON_CONTAINER_UPDATE_FAILED",
        /// The executor did not register in time.
        ExecutorRegistrationTimeout = "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
        /// The executor did not re-register in time.
        ExecutorReregistrationTimeout = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
        /// The executor ended.
        ExecutorTerminated = "REASON_EXECUTOR_TERMINATED",
        /// The executor never registered.
        ExecutorUnregistered = "REASON_EXECUTOR_UNREGISTERED",
        /// The framework was removed.
        FrameworkRemoved = "REASON_FRAMEWORK_REMOVED",
        /// Garbage collection failed.
        GcError = "REASON_GC_ERROR",
        /// The framework id is invalid.
        InvalidFrameworkid = "REASON_INVALID_FRAMEWORKID",
        /// The offers used were invalid.
        InvalidOffers = "REASON_INVALID_OFFERS",
        /// The IO switchboard exited.
        IoSwitchboardExited = "REASON_IO_SWITCHBOARD_EXITED",
        /// The master disconnected.
        MasterDisconnected = "REASON_MASTER_DISCONNECTED",
        /// An answer to reconciliation.
        Reconciliation = "REASON_RECONCILIATION",
        /// The resources are unknown.
        ResourcesUnknown = "REASON_RESOURCES_UNKNOWN",
        /// The agent disconnected.
        AgentDisconnected = "REASON_AGENT_DISCONNECTED" | "REASON_SLAVE_DISCONNECTED",
        /// The agent was removed.
        AgentRemoved = "REASON_AGENT_REMOVED" | "REASON_SLAVE_REMOVED",
        /// An operator removed the agent.
        AgentRemovedByOperator = "REASON_AGENT_REMOVED_BY_OPERATOR" | "REASON_SLAVE_REMOVED_BY_OPERATOR",
        /// The agent re-registered.
        AgentReregistered = "REASON_AGENT_REREGISTERED" | "REASON_SLAVE_REREGISTERED",
        /// The agent restarted.
        AgentRestarted = "REASON_AGENT_RESTARTED" | "REASON_SLAVE_RESTARTED",
        /// The agent is unknown.
        AgentUnknown = "REASON_AGENT_UNKNOWN" | "REASON_SLAVE_UNKNOWN",
        /// Killed while launching.
        TaskKilledDuringLaunch = "REASON_TASK_KILLED_DURING_LAUNCH",
        /// A check's status changed.
        TaskCheckStatusUpdated = "REASON_TASK_CHECK_STATUS_UPDATED",
        /// A health check's status changed.
        TaskHealthCheckStatusUpdated = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
        /// The task group is invalid.
        TaskGroupInvalid = "REASON_TASK_GROUP_INVALID",
        /// The task group is not authorized.
        TaskGroupUnauthorized = "REASON_TASK_GROUP_UNAUTHORIZED",
        /// The task is invalid.
        TaskInvalid = "REASON_TASK_INVALID",
        /// The task is not authorized.
        TaskUnauthorized = "REASON_TASK_UNAUTHORIZED",
        /// The task is unknown.
        TaskUnknown = "REASON_TASK_UNKNOWN",
    }
}

/// A task's status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task.
    pub task_id: Id,
    /// Its state.
    pub state: TaskState,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Why the task is in its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Opaque data (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    /// The executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    /// The update's id (base64), present when it must be acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The health check's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Container status (network addresses), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<Value>,
    /// Labels, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
}

/// Filters on DECLINE/ACCEPT.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    /// How long the declined resources are not offered again (default 5 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_seconds: Option<f64>,
}

/// Now, in seconds since the epoch, as Mesos timestamps are.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A new status-update uuid, base64 as Mesos's JSON renders `bytes`.
pub fn new_update_uuid() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes())
}
