//! The v1 executor API, typed: the [`Call`]s a custom executor makes to its agent
//! (`POST /api/v1/executor`) and the [`Event`]s the agent streams back to it.
//!
//! On the wire a call is `{"type": "UPDATE", "framework_id": {..}, "executor_id": {..},
//! "update": {..}}` and an event `{"type": "LAUNCH", "launch": {..}}`. [`Call::parse`] reads a
//! call straight into [`Call`] and refuses what the protocol does not have, in the words
//! Mesos answers with; [`Event`] reads and writes its own wire shape (the agent also keeps
//! undelivered events in its checkpoints in that shape).

use serde::{Deserialize, Serialize, Serializer};

use crate::api::{wire_enum, ExecutorInfo, FrameworkInfo, Id, KillPolicy, Resource, TaskInfo};
use crate::api::{TaskState, TaskStatus};
use crate::scheduler::TaskGroupInfo;
use crate::wire::tagged;

wire_enum! {
    /// `executor::Call::Type`.
    CallType {
        /// Subscribe (or re-subscribe) and open the event stream.
        Subscribe = "SUBSCRIBE",
        /// A task's new status.
        Update = "UPDATE",
        /// A message for the executor's scheduler.
        Message = "MESSAGE",
    }
}

/// An executor call: which executor sends it and what it asks.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The executor's framework.
    pub framework_id: Id,
    /// The executor.
    pub executor_id: Id,
    /// What it asks.
    pub body: CallBody,
}

/// What an executor call asks.
#[derive(Clone, Debug, PartialEq)]
pub enum CallBody {
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// UPDATE.
    Update(Update),
    /// MESSAGE.
    Message(Message),
}

/// `subscribe`: what a re-subscribing executor already has.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    /// Tasks it runs whose updates are not all acknowledged (their LAUNCH is not replayed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unacknowledged_tasks: Vec<TaskInfo>,
    /// Updates it sent that are not acknowledged yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unacknowledged_updates: Vec<Update>,
}

/// `update`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The task's status (with a uuid: the agent acknowledges it with ACKNOWLEDGED).
    pub status: TaskStatus,
}

/// `message` (of a call or an event).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Base64 data.
    pub data: String,
}

/// Why an executor call was refused, in the two forms the agent answers 400 with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not JSON, or not the shape of a Call.
    #[error("Failed to parse body into Call protobuf: {0}")]
    Parse(String),
    /// Well-formed, but not a valid call.
    #[error("Failed to validate executor::Call: {0}")]
    Invalid(String),
}

/// `Expecting '<field>' to be present`, Mesos' words for a missing field.
fn expecting(field: &str) -> CallError {
    CallError::Invalid(crate::wire::expecting(field))
}

/// An id as sent: validated after parsing, so a missing and an invalid one are told apart.
#[derive(Deserialize)]
struct RawId {
    value: Option<String>,
}

#[derive(Deserialize)]
struct RawUpdate {
    status: Option<TaskStatus>,
}

#[derive(Deserialize)]
struct RawMessage {
    data: Option<String>,
}

#[derive(Deserialize)]
struct RawCall {
    #[serde(rename = "type")]
    kind: Option<CallType>,
    framework_id: Option<RawId>,
    executor_id: Option<RawId>,
    subscribe: Option<Subscribe>,
    update: Option<RawUpdate>,
    message: Option<RawMessage>,
}

/// A required id of a call: `Expecting` when absent, the id's own error when invalid.
fn required_id(raw: Option<RawId>, field: &str) -> Result<Id, CallError> {
    let value = raw.and_then(|r| r.value).ok_or_else(|| expecting(field))?;
    Id::parse(value).map_err(|e| CallError::Invalid(format!("'{field}': {e}")))
}

/// An UPDATE's status, as the agent accepts it from an executor.
fn valid_update(raw: Option<RawUpdate>) -> Result<Update, CallError> {
    let status = raw
        .and_then(|u| u.status)
        .ok_or_else(|| expecting("update.status"))?;
    if status.uuid.as_deref().is_none_or(str::is_empty) {
        return Err(expecting("uuid"));
    }
    if status.state == TaskState::Staging {
        return Err(CallError::Invalid(
            "Received TASK_STAGING from executor, which is reserved for the agent".into(),
        ));
    }
    Ok(Update { status })
}

impl Call {
    /// Reads a call from its JSON body, once, into the typed call: an unknown type, a
    /// missing or invalid id, a type without its payload or an update without a uuid is
    /// refused.
    pub fn parse(body: &[u8]) -> Result<Call, CallError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| CallError::Parse(e.to_string()))?;
        if !value.is_object() {
            return Err(CallError::Parse("not a JSON object".into()));
        }
        let raw = RawCall::deserialize(value).map_err(|e| CallError::Parse(e.to_string()))?;
        let kind = raw.kind.ok_or_else(|| expecting("type"))?;
        let framework_id = required_id(raw.framework_id, "framework_id")?;
        let executor_id = required_id(raw.executor_id, "executor_id")?;
        let body = match kind {
            // An executor subscribing for the first time may leave `subscribe` out.
            CallType::Subscribe => CallBody::Subscribe(raw.subscribe.unwrap_or_default()),
            CallType::Update => CallBody::Update(valid_update(raw.update)?),
            CallType::Message => CallBody::Message(Message {
                data: raw
                    .message
                    .and_then(|m| m.data)
                    .ok_or_else(|| expecting("message.data"))?,
            }),
        };
        Ok(Call {
            framework_id,
            executor_id,
            body,
        })
    }
}

impl CallBody {
    /// The call's type.
    pub fn kind(&self) -> CallType {
        match self {
            CallBody::Subscribe(_) => CallType::Subscribe,
            CallBody::Update(_) => CallType::Update,
            CallBody::Message(_) => CallType::Message,
        }
    }
}

impl Serialize for Call {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.body.kind().as_str();
        let ids = [
            ("framework_id", &self.framework_id),
            ("executor_id", &self.executor_id),
        ];
        match &self.body {
            CallBody::Subscribe(p) => tagged(s, kind, &ids, Some(p)),
            CallBody::Update(p) => tagged(s, kind, &ids, Some(p)),
            CallBody::Message(p) => tagged(s, kind, &ids, Some(p)),
        }
    }
}

wire_enum! {
    /// `executor::Event::Type`.
    EventType {
        /// The subscription is open.
        Subscribed = "SUBSCRIBED",
        /// Run a task.
        Launch = "LAUNCH",
        /// Run a task group.
        LaunchGroup = "LAUNCH_GROUP",
        /// Kill a task.
        Kill = "KILL",
        /// The scheduler acknowledged an update.
        Acknowledged = "ACKNOWLEDGED",
        /// A message from the scheduler.
        Message = "MESSAGE",
        /// The agent refuses the executor.
        Error = "ERROR",
        /// Shut down: kill every task and exit.
        Shutdown = "SHUTDOWN",
        /// Keep-alive.
        Heartbeat = "HEARTBEAT",
    }
}

/// An event the agent sends an executor.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// SUBSCRIBED.
    Subscribed(Box<Subscribed>),
    /// LAUNCH.
    Launch(Box<Launch>),
    /// LAUNCH_GROUP.
    LaunchGroup(LaunchGroup),
    /// KILL.
    Kill(Kill),
    /// ACKNOWLEDGED.
    Acknowledged(Acknowledged),
    /// MESSAGE.
    Message(Message),
    /// ERROR.
    Error(Error),
    /// SHUTDOWN.
    Shutdown,
    /// HEARTBEAT.
    Heartbeat,
}

/// `subscribed`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The executor.
    pub executor_info: ExecutorInfo,
    /// Its framework.
    pub framework_info: FrameworkInfo,
    /// The agent it runs on.
    pub agent_info: AgentInfo,
    /// Its container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<Id>,
}

/// The agent an executor runs on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its id (absent before it registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// Its hostname.
    pub hostname: String,
    /// Its port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Its resources.
    #[serde(default)]
    pub resources: Vec<Resource>,
}

fn default_port() -> u16 {
    5051
}

/// `launch`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// The task.
    pub task: TaskInfo,
}

/// `launch_group`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroup {
    /// The tasks.
    pub task_group: TaskGroupInfo,
}

/// `kill`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kill {
    /// The task.
    pub task_id: Id,
    /// How (overrides the task's own policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

/// `acknowledged`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Acknowledged {
    /// The task.
    pub task_id: Id,
    /// The acknowledged update's uuid (base64).
    pub uuid: String,
}

/// `error`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Error {
    /// Why.
    pub message: String,
}

impl Event {
    /// The event's type.
    pub fn kind(&self) -> EventType {
        match self {
            Event::Subscribed(_) => EventType::Subscribed,
            Event::Launch(_) => EventType::Launch,
            Event::LaunchGroup(_) => EventType::LaunchGroup,
            Event::Kill(_) => EventType::Kill,
            Event::Acknowledged(_) => EventType::Acknowledged,
            Event::Message(_) => EventType::Message,
            Event::Error(_) => EventType::Error,
            Event::Shutdown => EventType::Shutdown,
            Event::Heartbeat => EventType::Heartbeat,
        }
    }

    /// Reads an event from its JSON form.
    pub fn parse(bytes: &[u8]) -> Result<Event, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The task a LAUNCH is for.
    pub fn launched_task(&self) -> Option<&Id> {
        match self {
            Event::Launch(launch) => Some(&launch.task.task_id),
            _ => None,
        }
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind().as_str();
        match self {
            Event::Subscribed(p) => tagged(s, kind, &[], Some(p)),
            Event::Launch(p) => tagged(s, kind, &[], Some(p)),
            Event::LaunchGroup(p) => tagged(s, kind, &[], Some(p)),
            Event::Kill(p) => tagged(s, kind, &[], Some(p)),
            Event::Acknowledged(p) => tagged(s, kind, &[], Some(p)),
            Event::Message(p) => tagged(s, kind, &[], Some(p)),
            Event::Error(p) => tagged(s, kind, &[], Some(p)),
            Event::Shutdown | Event::Heartbeat => tagged::<S, ()>(s, kind, &[], None),
        }
    }
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: EventType,
    subscribed: Option<Subscribed>,
    launch: Option<Launch>,
    launch_group: Option<LaunchGroup>,
    kill: Option<Kill>,
    acknowledged: Option<Acknowledged>,
    message: Option<Message>,
    error: Option<Error>,
}

impl TryFrom<RawEvent> for Event {
    type Error = String;

    fn try_from(raw: RawEvent) -> Result<Event, String> {
        let kind = raw.kind;
        let missing = || {
            format!(
                "Expecting '{}' to be present",
                kind.as_str().to_ascii_lowercase()
            )
        };
        Ok(match kind {
            EventType::Subscribed => {
                Event::Subscribed(Box::new(raw.subscribed.ok_or_else(missing)?))
            }
            EventType::Launch => Event::Launch(Box::new(raw.launch.ok_or_else(missing)?)),
            EventType::LaunchGroup => Event::LaunchGroup(raw.launch_group.ok_or_else(missing)?),
            EventType::Kill => Event::Kill(raw.kill.ok_or_else(missing)?),
            EventType::Acknowledged => Event::Acknowledged(raw.acknowledged.ok_or_else(missing)?),
            EventType::Message => Event::Message(raw.message.ok_or_else(missing)?),
            EventType::Error => Event::Error(raw.error.ok_or_else(missing)?),
            EventType::Shutdown => Event::Shutdown,
            EventType::Heartbeat => Event::Heartbeat,
        })
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let raw = RawEvent::deserialize(d)?;
        Event::try_from(raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: serde_json::Value) -> Result<Call, CallError> {
        Call::parse(&serde_json::to_vec(&v).unwrap())
    }

    fn invalid(text: &str) -> Result<Call, CallError> {
        Err(CallError::Invalid(text.into()))
    }

    #[test]
    fn calls_read_into_typed_calls_and_write_back_the_same() {
        let wires = [
            json!({"type": "SUBSCRIBE", "framework_id": {"value": "f"}, "executor_id": {"value": "e"}, "subscribe": {}}),
            json!({"type": "UPDATE", "framework_id": {"value": "f"}, "executor_id": {"value": "e"}, "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "uuid": "AAAA"}}}),
            json!({"type": "MESSAGE", "framework_id": {"value": "f"}, "executor_id": {"value": "e"}, "message": {"data": "aGk="}}),
        ];
        for wire in wires {
            let call = parse(wire.clone()).unwrap();
            assert_eq!(serde_json::to_value(&call).unwrap(), wire);
        }
        let resubscribe = json!({"type": "SUBSCRIBE", "framework_id": {"value": "f"}, "executor_id": {"value": "e"},
            "subscribe": {"unacknowledged_tasks": [{"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a"}}]}});
        let CallBody::Subscribe(s) = parse(resubscribe).unwrap().body else {
            panic!()
        };
        assert_eq!(s.unacknowledged_tasks[0].task_id, Id::new("t1"));
    }

    #[test]
    fn bad_calls_get_mesos_errors() {
        let ids = json!({"framework_id": {"value": "f"}, "executor_id": {"value": "e"}});
        let with = |extra: serde_json::Value| {
            let mut call = ids.clone();
            call.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse(call)
        };
        assert_eq!(with(json!({})), invalid("Expecting 'type' to be present"));
        assert_eq!(
            parse(json!({"type": "UPDATE", "framework_id": {"value": "f"}})),
            invalid("Expecting 'executor_id' to be present")
        );
        assert_eq!(
            parse(
                json!({"type": "UPDATE", "framework_id": {"value": "../f"}, "executor_id": {"value": "e"}})
            ),
            invalid("'framework_id': '../f' contains invalid characters")
        );
        assert_eq!(
            with(json!({"type": "UPDATE"})),
            invalid("Expecting 'update.status' to be present")
        );
        let status = |extra: serde_json::Value| {
            let mut status = json!({"task_id": {"value": "t"}, "state": "TASK_RUNNING"});
            status
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            with(json!({"type": "UPDATE", "update": {"status": status}}))
        };
        assert_eq!(status(json!({})), invalid("Expecting 'uuid' to be present"));
        assert_eq!(
            status(json!({"uuid": "AAAA", "state": "TASK_STAGING"})),
            invalid("Received TASK_STAGING from executor, which is reserved for the agent")
        );
        assert!(matches!(
            status(json!({"uuid": "AAAA", "state": "TASK_NAPPING"})),
            Err(CallError::Parse(_))
        ));
        assert_eq!(
            with(json!({"type": "MESSAGE", "message": {}})),
            invalid("Expecting 'message.data' to be present")
        );
        assert!(matches!(
            with(json!({"type": "FLY"})),
            Err(CallError::Parse(_))
        ));
        assert_eq!(
            Call::parse(b"[1]"),
            Err(CallError::Parse("not a JSON object".into()))
        );
        assert_eq!(
            CallError::Invalid("x".into()).to_string(),
            "Failed to validate executor::Call: x"
        );
    }

    #[test]
    fn events_round_trip_in_their_wire_shape() {
        let wires = [
            json!({"type": "SUBSCRIBED", "subscribed": {"executor_info": {"executor_id": {"value": "e"}}, "framework_info": {"user": "u", "name": "n"}, "agent_info": {"id": {"value": "a"}, "hostname": "h", "port": 5051, "resources": []}, "container_id": {"value": "c"}}}),
            json!({"type": "LAUNCH", "launch": {"task": {"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"}, "resources": []}}}),
            json!({"type": "KILL", "kill": {"task_id": {"value": "t"}, "kill_policy": {"grace_period": {"nanoseconds": 5}}}}),
            json!({"type": "KILL", "kill": {"task_id": {"value": "t"}}}),
            json!({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": {"value": "t"}, "uuid": "AAAA"}}),
            json!({"type": "MESSAGE", "message": {"data": "aGk="}}),
            json!({"type": "SHUTDOWN"}),
            json!({"type": "HEARTBEAT"}),
        ];
        for wire in wires {
            let event = Event::parse(&serde_json::to_vec(&wire).unwrap()).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), wire);
        }
        // As older agents checkpointed a KILL without a policy.
        let old = json!({"type": "KILL", "kill": {"task_id": {"value": "t"}, "kill_policy": null}});
        let Event::Kill(kill) = serde_json::from_value(old).unwrap() else {
            panic!()
        };
        assert_eq!(kill.kill_policy, None);
        assert!(Event::parse(br#"{"type":"LAUNCH"}"#).is_err());
    }
}
