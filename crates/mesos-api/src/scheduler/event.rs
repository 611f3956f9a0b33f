//! The events of the v1 scheduler API, typed: what the master streams to a framework.
//! On the wire an event is `{"type": "OFFERS", "offers": {..}}`.

use serde::{Deserialize, Serialize, Serializer};

use crate::api::{wire_enum, AllocationInfo, Attribute, Id, Resource, TaskStatus};

use crate::wire::{expecting, tagged};

wire_enum! {
    /// `scheduler::Event::Type`.
    EventType {
        /// The subscription is open.
        Subscribed = "SUBSCRIBED",
        /// New offers.
        Offers = "OFFERS",
        /// New inverse offers.
        InverseOffers = "INVERSE_OFFERS",
        /// An offer is withdrawn.
        Rescind = "RESCIND",
        /// An inverse offer is withdrawn.
        RescindInverseOffer = "RESCIND_INVERSE_OFFER",
        /// A task's status changed.
        Update = "UPDATE",
        /// A message from an executor.
        Message = "MESSAGE",
        /// An agent or executor failed.
        Failure = "FAILURE",
        /// The master refuses the framework (the stream ends).
        Error = "ERROR",
        /// Keep-alive.
        Heartbeat = "HEARTBEAT",
    }
}

/// A scheduler event.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// SUBSCRIBED.
    Subscribed(Subscribed),
    /// OFFERS.
    Offers(Offers),
    /// INVERSE_OFFERS (kept as given).
    InverseOffers(serde_json::Value),
    /// RESCIND.
    Rescind(Rescind),
    /// RESCIND_INVERSE_OFFER (kept as given).
    RescindInverseOffer(serde_json::Value),
    /// UPDATE.
    Update(Update),
    /// MESSAGE.
    Message(Message),
    /// FAILURE.
    Failure(Failure),
    /// ERROR.
    Error(Error),
    /// HEARTBEAT.
    Heartbeat,
}

/// `subscribed`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The framework's id.
    pub framework_id: Id,
    /// How often the master heartbeats the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<f64>,
    /// The master (kept as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_info: Option<serde_json::Value>,
}

/// `offers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Offers {
    /// The offers.
    #[serde(default)]
    pub offers: Vec<Offer>,
}

/// An offer of one agent's resources to one framework.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// Its id.
    pub id: Id,
    /// The framework it is for.
    pub framework_id: Id,
    /// The agent.
    pub agent_id: Id,
    /// The agent's hostname.
    pub hostname: String,
    /// The agent's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    /// The resources offered.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// The agent's attributes.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Executors of the framework already on the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executor_ids: Vec<Id>,
    /// The role the resources are allocated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
}

impl Offer {
    /// The text attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.text.as_ref())
            .map(|t| t.value.as_str())
    }
}

/// An agent's address in an offer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Url {
    /// `http`.
    pub scheme: String,
    /// Where.
    pub address: Address,
    /// The agent's libprocess path.
    #[serde(default)]
    pub path: String,
}

/// A host and port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    /// Its hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Its IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Its port.
    pub port: u16,
}

/// `rescind`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rescind {
    /// The offer withdrawn.
    pub offer_id: Id,
}

/// `update`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The status (acknowledge it when it has a uuid).
    pub status: TaskStatus,
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

/// `failure`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    /// The executor, when an executor failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    /// Its exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
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
            Event::Offers(_) => EventType::Offers,
            Event::InverseOffers(_) => EventType::InverseOffers,
            Event::Rescind(_) => EventType::Rescind,
            Event::RescindInverseOffer(_) => EventType::RescindInverseOffer,
            Event::Update(_) => EventType::Update,
            Event::Message(_) => EventType::Message,
            Event::Failure(_) => EventType::Failure,
            Event::Error(_) => EventType::Error,
            Event::Heartbeat => EventType::Heartbeat,
        }
    }

    /// Reads an event from its JSON form.
    pub fn parse(bytes: &[u8]) -> Result<Event, String> {
        let raw: RawEvent = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let kind = raw.kind;
        let missing = || expecting(&kind.as_str().to_ascii_lowercase());
        Ok(match kind {
            EventType::Subscribed => Event::Subscribed(raw.subscribed.ok_or_else(missing)?),
            EventType::Offers => Event::Offers(raw.offers.ok_or_else(missing)?),
            EventType::InverseOffers => {
                Event::InverseOffers(raw.inverse_offers.ok_or_else(missing)?)
            }
            EventType::Rescind => Event::Rescind(raw.rescind.ok_or_else(missing)?),
            EventType::RescindInverseOffer => {
                Event::RescindInverseOffer(raw.rescind_inverse_offer.ok_or_else(missing)?)
            }
            EventType::Update => Event::Update(raw.update.ok_or_else(missing)?),
            EventType::Message => Event::Message(raw.message.ok_or_else(missing)?),
            EventType::Failure => Event::Failure(raw.failure.ok_or_else(missing)?),
            EventType::Error => Event::Error(raw.error.ok_or_else(missing)?),
            EventType::Heartbeat => Event::Heartbeat,
        })
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind().as_str();
        match self {
            Event::Subscribed(p) => tagged(s, kind, &[], Some(p)),
            Event::Offers(p) => tagged(s, kind, &[], Some(p)),
            Event::InverseOffers(p) | Event::RescindInverseOffer(p) => {
                tagged(s, kind, &[], Some(p))
            }
            Event::Rescind(p) => tagged(s, kind, &[], Some(p)),
            Event::Update(p) => tagged(s, kind, &[], Some(p)),
            Event::Message(p) => tagged(s, kind, &[], Some(p)),
            Event::Failure(p) => tagged(s, kind, &[], Some(p)),
            Event::Error(p) => tagged(s, kind, &[], Some(p)),
            Event::Heartbeat => tagged::<S, ()>(s, kind, &[], None),
        }
    }
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: EventType,
    subscribed: Option<Subscribed>,
    offers: Option<Offers>,
    inverse_offers: Option<serde_json::Value>,
    rescind: Option<Rescind>,
    rescind_inverse_offer: Option<serde_json::Value>,
    update: Option<Update>,
    message: Option<Message>,
    failure: Option<Failure>,
    error: Option<Error>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TaskState;
    use serde_json::json;

    #[test]
    fn events_round_trip_in_their_wire_shape() {
        let wires = [
            json!({"type": "HEARTBEAT"}),
            json!({"type": "RESCIND", "rescind": {"offer_id": {"value": "o"}}}),
            json!({"type": "UPDATE", "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "source": "SOURCE_EXECUTOR", "reason": "REASON_RECONCILIATION"}}}),
            json!({"type": "OFFERS", "offers": {"offers": [{"id": {"value": "o"}, "framework_id": {"value": "f"}, "agent_id": {"value": "a"}, "hostname": "h", "url": {"scheme": "http", "address": {"hostname": "h", "ip": "10.0.0.1", "port": 5051}, "path": "/slave(1)"}, "resources": [], "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r1"}}], "allocation_info": {"role": "*"}}]}}),
        ];
        for wire in wires {
            let event = Event::parse(&serde_json::to_vec(&wire).unwrap()).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), wire);
        }
        let update = Event::parse(br#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_LOST","reason":"REASON_SLAVE_REMOVED"}}}"#).unwrap();
        let Event::Update(u) = update else { panic!() };
        assert_eq!(u.status.state, TaskState::Lost);
        assert_eq!(u.status.reason, Some(crate::api::Reason::AgentRemoved));
    }

    #[test]
    fn unknown_states_and_missing_payloads_are_refused() {
        assert!(Event::parse(br#"{"type":"OFFERS"}"#).is_err());
        assert!(Event::parse(br#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_NAPPING"}}}"#).is_err());
    }
}
