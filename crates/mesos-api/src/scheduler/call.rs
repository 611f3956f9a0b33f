//! The calls of the v1 scheduler API, typed. A call is `{"type": "ACCEPT", "framework_id":
//! {..}, "accept": {..}}` on the wire: [`Call::parse`] reads one straight into [`Call`] (no
//! intermediate tree) and refuses what the protocol does not have; [`Call`]'s `Serialize`
//! writes the same shape.

use serde::{Deserialize, Serialize, Serializer};

use crate::api::{wire_enum, ExecutorInfo, Filters, FrameworkInfo, Id, Resource, TaskInfo};
use crate::wire::{expecting, tagged};

wire_enum! {
    /// `scheduler::Call::Type`.
    CallType {
        /// Subscribe (or re-subscribe) and open the event stream.
        Subscribe = "SUBSCRIBE",
        /// Remove the framework and kill its tasks.
        Teardown = "TEARDOWN",
        /// Use offers.
        Accept = "ACCEPT",
        /// Return offers.
        Decline = "DECLINE",
        /// Use inverse offers.
        AcceptInverseOffers = "ACCEPT_INVERSE_OFFERS",
        /// Return inverse offers.
        DeclineInverseOffers = "DECLINE_INVERSE_OFFERS",
        /// Offers again, filters cleared.
        Revive = "REVIVE",
        /// No more offers until revived.
        Suppress = "SUPPRESS",
        /// Kill a task.
        Kill = "KILL",
        /// Shut an executor down.
        Shutdown = "SHUTDOWN",
        /// Acknowledge a status update.
        Acknowledge = "ACKNOWLEDGE",
        /// Ask for the latest state of tasks.
        Reconcile = "RECONCILE",
        /// A message for an executor.
        Message = "MESSAGE",
        /// A resource request (the allocator ignores it, as Mesos' does).
        Request = "REQUEST",
    }
}

/// A scheduler call: who sends it and what it asks.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The caller (absent only on a first SUBSCRIBE).
    pub framework_id: Option<Id>,
    /// What it asks.
    pub body: CallBody,
}

/// What a scheduler call asks.
#[derive(Clone, Debug, PartialEq)]
pub enum CallBody {
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// TEARDOWN.
    Teardown,
    /// ACCEPT.
    Accept(Accept),
    /// DECLINE.
    Decline(Decline),
    /// ACCEPT_INVERSE_OFFERS.
    AcceptInverseOffers(InverseOffers),
    /// DECLINE_INVERSE_OFFERS.
    DeclineInverseOffers(InverseOffers),
    /// REVIVE.
    Revive,
    /// SUPPRESS.
    Suppress,
    /// KILL.
    Kill(Kill),
    /// SHUTDOWN.
    Shutdown(Shutdown),
    /// ACKNOWLEDGE.
    Acknowledge(Acknowledge),
    /// RECONCILE.
    Reconcile(Reconcile),
    /// MESSAGE.
    Message(Message),
    /// REQUEST.
    Request(Request),
}

/// `subscribe`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    /// The framework.
    pub framework_info: FrameworkInfo,
}

/// `accept`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Accept {
    /// The offers used (all on one agent).
    pub offer_ids: Vec<Id>,
    /// What to do with them.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// How long what is left is not offered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `decline`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Decline {
    /// The offers returned.
    pub offer_ids: Vec<Id>,
    /// How long they are not offered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `accept_inverse_offers` / `decline_inverse_offers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InverseOffers {
    /// The inverse offers.
    #[serde(default)]
    pub inverse_offer_ids: Vec<Id>,
}

/// `kill`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kill {
    /// The task.
    pub task_id: Id,
    /// Its agent, when the framework knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    /// Overrides the task's kill policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<crate::api::KillPolicy>,
}

/// `shutdown`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Shutdown {
    /// The executor.
    pub executor_id: Id,
    /// Its agent.
    pub agent_id: Id,
}

/// `acknowledge`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Acknowledge {
    /// The agent the update came from.
    pub agent_id: Id,
    /// The task.
    pub task_id: Id,
    /// The update's uuid (base64 of 16 bytes).
    pub uuid: String,
}

impl Acknowledge {
    /// The acknowledgement a status update needs: one with a uuid, from an agent.
    pub fn of(status: &crate::api::TaskStatus) -> Option<Acknowledge> {
        Some(Acknowledge {
            agent_id: status.agent_id.clone()?,
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone()?,
        })
    }
}

/// `reconcile`: no tasks asks for every task of the framework (implicit reconciliation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconcile {
    /// The tasks asked about.
    #[serde(default)]
    pub tasks: Vec<ReconcileTask>,
}

/// One task of a RECONCILE.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileTask {
    /// The task.
    pub task_id: Id,
    /// Its agent, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
}

/// `message`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The executor's agent.
    pub agent_id: Id,
    /// The executor.
    pub executor_id: Id,
    /// Base64 data.
    pub data: String,
}

/// `request` (kept as given; nothing reads it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The requests.
    #[serde(default)]
    pub requests: Vec<serde_json::Value>,
}

wire_enum! {
    /// `Offer::Operation::Type`.
    OperationType {
        /// Launch tasks.
        Launch = "LAUNCH",
        /// Launch a task group under one executor.
        LaunchGroup = "LAUNCH_GROUP",
        /// Reserve resources for a role.
        Reserve = "RESERVE",
        /// Unreserve resources.
        Unreserve = "UNRESERVE",
        /// Create persistent volumes.
        Create = "CREATE",
        /// Destroy persistent volumes.
        Destroy = "DESTROY",
    }
}

/// What an ACCEPT does with its offers.
#[expect(
    clippy::large_enum_variant,
    reason = "an operation is parsed once and moved; LAUNCH, the common one, is the small one"
)]
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    /// LAUNCH.
    Launch(Launch),
    /// LAUNCH_GROUP.
    LaunchGroup(LaunchGroup),
    /// RESERVE.
    Reserve(Resources),
    /// UNRESERVE.
    Unreserve(Resources),
    /// CREATE.
    Create(Volumes),
    /// DESTROY.
    Destroy(Volumes),
}

/// `launch`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// The tasks.
    #[serde(default)]
    pub task_infos: Vec<TaskInfo>,
}

/// `launch_group`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroup {
    /// The executor the group runs under.
    pub executor: ExecutorInfo,
    /// The tasks.
    pub task_group: TaskGroupInfo,
}

/// A task group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskGroupInfo {
    /// Its tasks.
    #[serde(default)]
    pub tasks: Vec<TaskInfo>,
}

/// `reserve` / `unreserve`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// The resources.
    #[serde(default)]
    pub resources: Vec<Resource>,
}

/// `create` / `destroy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Volumes {
    /// The volumes (disk resources).
    #[serde(default)]
    pub volumes: Vec<Resource>,
}

impl Operation {
    /// The operation's type.
    pub fn kind(&self) -> OperationType {
        match self {
            Operation::Launch(_) => OperationType::Launch,
            Operation::LaunchGroup(_) => OperationType::LaunchGroup,
            Operation::Reserve(_) => OperationType::Reserve,
            Operation::Unreserve(_) => OperationType::Unreserve,
            Operation::Create(_) => OperationType::Create,
            Operation::Destroy(_) => OperationType::Destroy,
        }
    }

    /// A LAUNCH of `tasks`.
    pub fn launch(tasks: Vec<TaskInfo>) -> Operation {
        Operation::Launch(Launch { task_infos: tasks })
    }
}

/// The payload field a type carries: its name in lower case.
fn field_of(kind: &'static str) -> String {
    kind.to_ascii_lowercase()
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Operation::Launch(p) => tagged(s, self.kind().as_str(), &[], Some(p)),
            Operation::LaunchGroup(p) => tagged(s, self.kind().as_str(), &[], Some(p)),
            Operation::Reserve(p) | Operation::Unreserve(p) => {
                tagged(s, self.kind().as_str(), &[], Some(p))
            }
            Operation::Create(p) | Operation::Destroy(p) => {
                tagged(s, self.kind().as_str(), &[], Some(p))
            }
        }
    }
}

#[derive(Deserialize)]
struct RawOperation {
    #[serde(rename = "type")]
    kind: OperationType,
    launch: Option<Launch>,
    launch_group: Option<LaunchGroup>,
    reserve: Option<Resources>,
    unreserve: Option<Resources>,
    create: Option<Volumes>,
    destroy: Option<Volumes>,
}

impl TryFrom<RawOperation> for Operation {
    type Error = String;

    fn try_from(raw: RawOperation) -> Result<Operation, String> {
        let field = field_of(raw.kind.as_str());
        let missing = || expecting(&format!("operation.{field}"));
        Ok(match raw.kind {
            OperationType::Launch => Operation::Launch(raw.launch.unwrap_or_default()),
            OperationType::LaunchGroup => {
                Operation::LaunchGroup(raw.launch_group.ok_or_else(missing)?)
            }
            OperationType::Reserve => Operation::Reserve(raw.reserve.ok_or_else(missing)?),
            OperationType::Unreserve => Operation::Unreserve(raw.unreserve.ok_or_else(missing)?),
            OperationType::Create => Operation::Create(raw.create.ok_or_else(missing)?),
            OperationType::Destroy => Operation::Destroy(raw.destroy.ok_or_else(missing)?),
        })
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Operation, D::Error> {
        let raw = RawOperation::deserialize(d)?;
        Operation::try_from(raw).map_err(serde::de::Error::custom)
    }
}

impl CallBody {
    /// The call's type.
    pub fn kind(&self) -> CallType {
        match self {
            CallBody::Subscribe(_) => CallType::Subscribe,
            CallBody::Teardown => CallType::Teardown,
            CallBody::Accept(_) => CallType::Accept,
            CallBody::Decline(_) => CallType::Decline,
            CallBody::AcceptInverseOffers(_) => CallType::AcceptInverseOffers,
            CallBody::DeclineInverseOffers(_) => CallType::DeclineInverseOffers,
            CallBody::Revive => CallType::Revive,
            CallBody::Suppress => CallType::Suppress,
            CallBody::Kill(_) => CallType::Kill,
            CallBody::Shutdown(_) => CallType::Shutdown,
            CallBody::Acknowledge(_) => CallType::Acknowledge,
            CallBody::Reconcile(_) => CallType::Reconcile,
            CallBody::Message(_) => CallType::Message,
            CallBody::Request(_) => CallType::Request,
        }
    }
}

impl Serialize for Call {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.body.kind().as_str();
        let id = self.framework_id.as_ref().map(|i| ("framework_id", i));
        let ids = id.as_slice();
        match &self.body {
            CallBody::Subscribe(p) => tagged(s, kind, ids, Some(p)),
            CallBody::Teardown | CallBody::Revive | CallBody::Suppress => {
                tagged::<S, ()>(s, kind, ids, None)
            }
            CallBody::Accept(p) => tagged(s, kind, ids, Some(p)),
            CallBody::Decline(p) => tagged(s, kind, ids, Some(p)),
            CallBody::AcceptInverseOffers(p) | CallBody::DeclineInverseOffers(p) => {
                tagged(s, kind, ids, Some(p))
            }
            CallBody::Kill(p) => tagged(s, kind, ids, Some(p)),
            CallBody::Shutdown(p) => tagged(s, kind, ids, Some(p)),
            CallBody::Acknowledge(p) => tagged(s, kind, ids, Some(p)),
            CallBody::Reconcile(p) => tagged(s, kind, ids, Some(p)),
            CallBody::Message(p) => tagged(s, kind, ids, Some(p)),
            CallBody::Request(p) => tagged(s, kind, ids, Some(p)),
        }
    }
}

#[derive(Deserialize)]
struct RawCall {
    #[serde(rename = "type")]
    kind: Option<CallType>,
    framework_id: Option<Id>,
    subscribe: Option<Subscribe>,
    accept: Option<Accept>,
    decline: Option<Decline>,
    accept_inverse_offers: Option<InverseOffers>,
    decline_inverse_offers: Option<InverseOffers>,
    kill: Option<Kill>,
    shutdown: Option<Shutdown>,
    acknowledge: Option<Acknowledge>,
    reconcile: Option<Reconcile>,
    message: Option<Message>,
    request: Option<Request>,
}

/// Why a call body was refused, in the two forms Mesos answers 400 with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not JSON, or not the shape of a Call.
    #[error("Failed to parse body into Call protobuf: {0}")]
    Parse(String),
    /// Well-formed, but not a valid call.
    #[error("Failed to validate scheduler::Call: {0}")]
    Invalid(String),
}

impl Call {
    /// A call of `framework_id`.
    pub fn new(framework_id: Option<Id>, body: CallBody) -> Call {
        Call { framework_id, body }
    }

    /// Reads a call from its JSON body: straight into the typed call, refusing unknown types,
    /// invalid ids and a type without its payload.
    pub fn parse(body: &[u8]) -> Result<Call, CallError> {
        let raw: RawCall =
            serde_json::from_slice(body).map_err(|e| CallError::Parse(e.to_string()))?;
        let kind = raw
            .kind
            .ok_or_else(|| CallError::Invalid(expecting("type")))?;
        let missing = || CallError::Invalid(expecting(&field_of(kind.as_str())));
        let body = match kind {
            CallType::Subscribe => CallBody::Subscribe(raw.subscribe.ok_or_else(missing)?),
            CallType::Teardown => CallBody::Teardown,
            CallType::Accept => CallBody::Accept(raw.accept.ok_or_else(missing)?),
            CallType::Decline => CallBody::Decline(raw.decline.ok_or_else(missing)?),
            CallType::AcceptInverseOffers => {
                CallBody::AcceptInverseOffers(raw.accept_inverse_offers.ok_or_else(missing)?)
            }
            CallType::DeclineInverseOffers => {
                CallBody::DeclineInverseOffers(raw.decline_inverse_offers.ok_or_else(missing)?)
            }
            CallType::Revive => CallBody::Revive,
            CallType::Suppress => CallBody::Suppress,
            CallType::Kill => CallBody::Kill(raw.kill.ok_or_else(missing)?),
            CallType::Shutdown => CallBody::Shutdown(raw.shutdown.ok_or_else(missing)?),
            CallType::Acknowledge => CallBody::Acknowledge(raw.acknowledge.ok_or_else(missing)?),
            CallType::Reconcile => CallBody::Reconcile(raw.reconcile.ok_or_else(missing)?),
            CallType::Message => CallBody::Message(raw.message.ok_or_else(missing)?),
            CallType::Request => CallBody::Request(raw.request.unwrap_or_default()),
        };
        Ok(Call {
            framework_id: raw.framework_id,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Call, CallError> {
        Call::parse(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn an_accept_reads_into_typed_tasks_and_writes_back_the_same() {
        let wire = json!({
            "type": "ACCEPT",
            "framework_id": {"value": "fw"},
            "accept": {
                "offer_ids": [{"value": "o1"}],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [
                    {"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"}, "resources": []}
                ]}}],
                "filters": {"refuse_seconds": 5.0}
            }
        });
        let call = parse(wire.clone()).unwrap();
        let CallBody::Accept(accept) = &call.body else {
            panic!("{call:?}")
        };
        let Operation::Launch(launch) = &accept.operations[0] else {
            panic!("{accept:?}")
        };
        assert_eq!(launch.task_infos[0].task_id.value, "t1");
        assert_eq!(serde_json::to_value(&call).unwrap(), wire);
    }

    #[test]
    fn mesos_errors_for_bad_calls() {
        assert_eq!(
            parse(json!({"type": "ACCEPT"})),
            Err(CallError::Invalid(
                "Expecting 'accept' to be present".into()
            ))
        );
        assert_eq!(
            parse(json!({})),
            Err(CallError::Invalid("Expecting 'type' to be present".into()))
        );
        assert!(matches!(
            parse(json!({"type": "FLY"})),
            Err(CallError::Parse(_))
        ));
        assert!(matches!(
            parse(json!({"type": "KILL", "kill": {"task_id": {"value": "../x"}}})),
            Err(CallError::Parse(_))
        ));
        assert!(matches!(Call::parse(b"[1]"), Err(CallError::Parse(_))));
        assert!(matches!(
            parse(
                json!({"type": "ACCEPT", "accept": {"offer_ids": [], "operations": [{"type": "LAUNCH_GROUP"}]}})
            ),
            Err(CallError::Parse(_))
        ));
    }

    #[test]
    fn payload_free_calls_round_trip() {
        for kind in ["TEARDOWN", "REVIVE", "SUPPRESS"] {
            let wire = json!({"type": kind, "framework_id": {"value": "fw"}});
            assert_eq!(
                serde_json::to_value(parse(wire.clone()).unwrap()).unwrap(),
                wire
            );
        }
    }
}
