//! The authoritative `mesos` zone: a snapshot of A and SRV records and how queries in the zone
//! are answered (as Mesos-DNS answers them: authoritative, NXDOMAIN with the SOA for unknown
//! names, NODATA with the SOA for known names of another type, SRV targets' addresses in the
//! additional section).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// An SRV target: `name:port`.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Target {
    /// A fully qualified name with its trailing dot (`web-abc-s1.marathon.slave.mesos.`).
    pub host: String,
    /// The port.
    pub port: u16,
}

/// The zone's records. Names are lower case and fully qualified, with the trailing dot.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Records {
    /// A records.
    pub a: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    /// SRV records.
    pub srv: BTreeMap<String, BTreeSet<Target>>,
}

impl Records {
    /// Adds an A record.
    pub fn insert_a(&mut self, name: &str, ip: Ipv4Addr) {
        self.a
            .entry(name.to_ascii_lowercase())
            .or_default()
            .insert(ip);
    }

    /// Adds an SRV record.
    pub fn insert_srv(&mut self, name: &str, host: &str, port: u16) {
        self.srv
            .entry(name.to_ascii_lowercase())
            .or_default()
            .insert(Target {
                host: host.to_ascii_lowercase(),
                port,
            });
    }
}

/// The zone's SOA parameters (Mesos-DNS' `SOA*` config keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    /// The primary name server (`ns1.mesos.`).
    pub mname: String,
    /// The responsible mailbox (`root.ns1.mesos.`).
    pub rname: String,
    /// Seconds.
    pub refresh: i32,
    /// Seconds.
    pub retry: i32,
    /// Seconds.
    pub expire: i32,
    /// Seconds.
    pub minttl: u32,
}

/// The zone: its domain, TTL, SOA and records.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The domain with its trailing dot (`mesos.`).
    pub domain: String,
    /// The TTL of every record.
    pub ttl: u32,
    /// SOA parameters.
    pub soa: Soa,
    /// The serial: bumped with each new snapshot.
    pub serial: u32,
    /// The records.
    pub records: Records,
}

fn name(text: &str) -> Option<Name> {
    Name::from_ascii(text).ok()
}

impl Zone {
    /// Whether `qname` (lower case, fully qualified) is the domain or below it.
    pub fn contains(&self, qname: &str) -> bool {
        qname
            .strip_suffix(self.domain.as_str())
            .is_some_and(|head| head.is_empty() || head.ends_with('.'))
    }

    /// The SOA, owned (as Mesos-DNS owns it) by the question's name.
    fn soa_record(&self, owner: &Name) -> Option<Record> {
        let soa = SOA::new(
            name(&self.soa.mname)?,
            name(&self.soa.rname)?,
            self.serial,
            self.soa.refresh,
            self.soa.retry,
            self.soa.expire,
            self.soa.minttl,
        );
        Some(Record::from_rdata(owner.clone(), self.ttl, RData::SOA(soa)))
    }

    fn ns_record(&self, owner: &Name) -> Option<Record> {
        Some(Record::from_rdata(
            owner.clone(),
            self.ttl,
            RData::NS(NS(name(&self.soa.mname)?)),
        ))
    }

    fn a_records(&self, owner: &Name, qname: &str) -> Vec<Record> {
        self.records
            .a
            .get(qname)
            .into_iter()
            .flatten()
            .map(|ip| Record::from_rdata(owner.clone(), self.ttl, RData::A(A(*ip))))
            .collect()
    }

    fn srv_records(&self, owner: &Name, qname: &str) -> Vec<Record> {
        self.records
            .srv
            .get(qname)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let srv = SRV::new(0, 1, t.port, name(&t.host)?);
                Some(Record::from_rdata(owner.clone(), self.ttl, RData::SRV(srv)))
            })
            .collect()
    }

    /// The answer to a query for `qname` (lower case, fully qualified, in the zone) of
    /// `qtype`, written into `response` (whose header and query are already set).
    ///
    /// As Mesos-DNS answers: SOA and NS go in the authority section, owned by the question's
    /// name; an unknown name gets NXDOMAIN and a known one of another type NODATA, both with
    /// the SOA (except SRV, SOA and NS questions, answered NOERROR as they are); each SRV
    /// target's address goes in the additional section.
    pub fn answer(&self, owner: &Name, qname: &str, qtype: RecordType, response: &mut Message) {
        response.set_authoritative(true);
        let lower = name(qname).unwrap_or_else(|| owner.clone());
        let mut answers = Vec::new();
        if matches!(qtype, RecordType::SRV | RecordType::ANY) {
            answers.extend(self.srv_records(owner, qname));
        }
        if matches!(qtype, RecordType::A | RecordType::ANY) {
            answers.extend(self.a_records(&lower, qname));
        }
        if matches!(qtype, RecordType::SOA | RecordType::ANY) {
            response.add_name_servers(self.soa_record(owner));
        }
        if matches!(qtype, RecordType::NS | RecordType::ANY) {
            response.add_name_servers(self.ns_record(owner));
        }
        if answers.is_empty() {
            if matches!(qtype, RecordType::SRV | RecordType::SOA | RecordType::NS) {
                return;
            }
            let known = self.records.a.contains_key(qname) || self.records.srv.contains_key(qname);
            if !known {
                response.set_response_code(ResponseCode::NXDomain);
            }
            response.add_name_servers(self.soa_record(owner));
            return;
        }
        let mut additional: Vec<Record> = Vec::new();
        let mut seen = BTreeSet::new();
        for rr in &answers {
            let RData::SRV(srv) = rr.data() else {
                continue;
            };
            let key = srv.target().to_ascii().to_ascii_lowercase();
            if seen.insert(key.clone()) {
                additional.extend(self.a_records(srv.target(), &key).into_iter().take(1));
            }
        }
        response.add_answers(answers);
        response.add_additionals(additional);
    }
}

/// A response to `request` with its id, opcode, query and RD flag copied.
pub fn response_to(request: &Message) -> Message {
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired());
    response.add_queries(request.queries().to_vec());
    response
}
