//! The port contract: every row of the DC/OS 1.11 "Ports" page as typed data.
//!
//! The table is the project's own copy of the page's facts. A row's bind scope is derived
//! from its Source/Destination columns: localhost rows bind 127.0.0.1, `public IP` rows bind
//! every address, the rest bind the node's cluster IP. [`bind_addrs`] turns that into the
//! socket addresses a unit listens on, for every unit and for whoever connects to one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Serialize;

use crate::range::RangeSet;

/// Transport protocol of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The section of the page a row comes from: which nodes hold the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// "All nodes".
    All,
    /// "Master".
    Master,
    /// "Agent" (private and public agents).
    Agent,
}

/// The role a node plays; a node may be master and agent at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// A master.
    Master,
    /// A private agent.
    Agent,
    /// A public agent.
    AgentPublic,
    /// A master that is also an agent (the single-node local cluster).
    #[serde(rename = "master+agent")]
    MasterAgent,
}

impl NodeRole {
    /// Parses `master`, `agent`, `agent_public` (or `public_agent`, `slave_public`), `master+agent`.
    pub fn parse(text: &str) -> Option<NodeRole> {
        Some(match text {
            "master" => NodeRole::Master,
            "agent" | "slave" => NodeRole::Agent,
            "agent_public" | "public_agent" | "slave_public" => NodeRole::AgentPublic,
            "master+agent" => NodeRole::MasterAgent,
            _ => return None,
        })
    }

    /// The role's name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Master => "master",
            NodeRole::Agent => "agent",
            NodeRole::AgentPublic => "agent_public",
            NodeRole::MasterAgent => "master+agent",
        }
    }

    /// Whether the node runs the master's components.
    pub fn is_master(self) -> bool {
        matches!(self, NodeRole::Master | NodeRole::MasterAgent)
    }

    /// Whether the node runs an agent's components.
    pub fn is_agent(self) -> bool {
        !matches!(self, NodeRole::Master)
    }

    /// Whether rows of `section` apply to this node.
    pub fn holds(self, section: Section) -> bool {
        match section {
            Section::All => true,
            Section::Master => self.is_master(),
            Section::Agent => self.is_agent(),
        }
    }
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The port column of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortSpec {
    /// One port.
    Single(u16),
    /// An inclusive range (the agent's task ranges).
    Range(u16, u16),
    /// An ephemeral port chosen at run time (the Pkgpanda API).
    Ephemeral,
}

/// Where a row's listener binds, derived from its Source/Destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BindScope {
    /// 127.0.0.1 only; reached from other nodes through Admin Router.
    Localhost,
    /// The node's cluster IP.
    Cluster,
    /// Every address (Admin Router's public ports).
    Any,
}

impl BindScope {
    /// The address a listener of this scope binds on a node whose cluster IP is `node_ip`.
    pub fn addr(self, node_ip: IpAddr) -> IpAddr {
        match self {
            BindScope::Localhost => IpAddr::V4(Ipv4Addr::LOCALHOST),
            BindScope::Cluster => node_ip,
            BindScope::Any => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// One row of the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRow {
    /// The port, range or ephemeral marker.
    pub port: PortSpec,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Which nodes hold the port.
    pub section: Section,
    /// The DC/OS component, as the page names it.
    pub component: &'static str,
    /// The systemd units, as the page names them.
    pub units: &'static [&'static str],
    /// The Source column.
    pub source: &'static str,
    /// The Destination column.
    pub destination: &'static str,
    /// Enterprise-only row.
    pub enterprise: bool,
    /// False only for rows this project adds to the page.
    pub in_spec: bool,
    /// Also bound on 127.0.0.1 beside its scope's address: only the node's resolver
    /// (dcos-net's 53), which the node itself asks on loopback as DC/OS' does. Nothing
    /// another node can reach is added.
    pub loopback_too: bool,
}

impl PortRow {
    /// The bind scope that Source/Destination imply.
    pub fn bind(&self) -> BindScope {
        if self.source == "public IP" {
            BindScope::Any
        } else if self.source == "localhost"
            || self.destination.starts_with("localhost")
            || matches!(self.port, PortSpec::Ephemeral)
        {
            BindScope::Localhost
        } else {
            BindScope::Cluster
        }
    }

    /// Every socket address the row binds on a node whose cluster IP is `node_ip`: its scope's
    /// address first, then 127.0.0.1 for a row bound there too (once, when the node's IP is
    /// loopback). Empty for a task range or an ephemeral row, which have no fixed port.
    pub fn bind_addrs(&self, node_ip: IpAddr) -> Vec<SocketAddr> {
        let PortSpec::Single(port) = self.port else {
            return Vec::new();
        };
        let own = SocketAddr::new(self.bind().addr(node_ip), port);
        let lo = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        if self.loopback_too && own != lo {
            vec![own, lo]
        } else {
            vec![own]
        }
    }

    /// Whether this row is one of the agent's advertised task ranges.
    pub fn is_task_range(&self) -> bool {
        matches!(self.port, PortSpec::Range(..))
    }

    /// The ports of the row as a set (empty for an ephemeral row).
    pub fn ports(&self) -> RangeSet {
        match self.port {
            PortSpec::Single(p) => RangeSet::single(p),
            PortSpec::Range(b, e) => RangeSet::range(b, e),
            PortSpec::Ephemeral => RangeSet::new(),
        }
    }

    /// Whether the row belongs to `unit`.
    pub fn has_unit(&self, unit: &str) -> bool {
        self.units.contains(&unit)
    }

    /// Whether dcos-rs serves the row: every open-source row, and the Enterprise rows whose
    /// component it has ([`SERVED_ENTERPRISE_UNITS`]).
    pub fn served(&self) -> bool {
        !self.enterprise
            || self
                .units
                .iter()
                .any(|u| SERVED_ENTERPRISE_UNITS.contains(u))
    }
}

/// The units of Enterprise rows that dcos-rs serves: the IAM (8101) and the CA (8888).
pub const SERVED_ENTERPRISE_UNITS: &[&str] = &["dcos-bouncer.service", "dcos-ca.service"];

const NET: &[&str] = &["dcos-net.service"];
const EXHIBITOR: &[&str] = &["dcos-exhibitor.service"];
const REGISTRY: &[&str] = &["dcos-registry.service"];
const DIAGNOSTICS: &[&str] = &["dcos-diagnostics.service"];
const AR: &[&str] = &["dcos-adminrouter.service"];
const AR_AGENT: &[&str] = &["dcos-adminrouter-agent"];
const MARATHON: &[&str] = &["dcos-marathon.service"];
const METRONOME: &[&str] = &["dcos-metronome.service"];
const COSMOS: &[&str] = &["dcos-cosmos.service"];
const MESOS_DNS: &[&str] = &["dcos-mesos-dns.service"];
const AM: &str = "agent/master";
const TASKS: &str = "Default advertised port ranges (for Mesos tasks)";

const fn row(
    port: PortSpec,
    protocol: Protocol,
    section: Section,
    component: &'static str,
    units: &'static [&'static str],
    source: &'static str,
    destination: &'static str,
) -> PortRow {
    PortRow {
        port,
        protocol,
        section,
        component,
        units,
        source,
        destination,
        enterprise: false,
        in_spec: true,
        loopback_too: false,
    }
}

const fn ee(mut r: PortRow) -> PortRow {
    r.enterprise = true;
    r
}

const fn added(mut r: PortRow) -> PortRow {
    r.in_spec = false;
    r
}

/// The node's resolver: bound on loopback too (see [`PortRow::loopback_too`]).
const fn resolver(mut r: PortRow) -> PortRow {
    r.loopback_too = true;
    r
}

use PortSpec::{Ephemeral, Range, Single};
use Protocol::{Tcp, Udp};
use Section::{Agent, All, Master};

/// Every row of the page, in the page's order, then the rows this project adds.
pub static CONTRACT: &[PortRow] = &[
    // All nodes, TCP.
    resolver(row(Single(53), Tcp, All, "DC/OS Net", NET, AM, AM)),
    row(
        Single(61003),
        Tcp,
        All,
        "REX-Ray",
        &["dcos-rexray.service"],
        "agent/master (may change due to specific REX-Ray configuration)",
        "agent/master (may change due to specific REX-Ray configuration)",
    ),
    row(
        Single(61091),
        Tcp,
        All,
        "dcos-metrics",
        &["dcos-metrics-agent.service", "dcos-metrics-master.service"],
        AM,
        "agent/extra",
    ),
    row(Single(61420), Tcp, All, "DC/OS Net", NET, AM, AM),
    row(Single(62080), Tcp, All, "DC/OS Net", NET, AM, AM),
    row(Single(62501), Tcp, All, "DC/OS Net", NET, AM, AM),
    // All nodes, UDP.
    resolver(row(Single(53), Udp, All, "DC/OS Net", NET, AM, AM)),
    // Master, TCP.
    row(
        Single(80),
        Tcp,
        Master,
        "Admin Router Master (HTTP)",
        AR,
        "public IP",
        "master",
    ),
    row(
        Single(443),
        Tcp,
        Master,
        "Admin Router Master (HTTPS)",
        AR,
        "public IP",
        "master",
    ),
    ee(row(
        Single(1337),
        Tcp,
        Master,
        "DC/OS Secrets",
        &["dcos-secrets.service"],
        "localhost",
        "localhost(master)",
    )),
    row(
        Single(2181),
        Tcp,
        Master,
        "ZooKeeper",
        EXHIBITOR,
        AM,
        "master",
    ),
    row(
        Single(3888),
        Tcp,
        Master,
        "Exhibitor, or ZooKeeper and Exhibitor",
        EXHIBITOR,
        AM,
        "master",
    ),
    row(
        Single(5050),
        Tcp,
        Master,
        "Mesos Master",
        &["dcos-mesos-master.service"],
        AM,
        "master",
    ),
    row(
        Single(7070),
        Tcp,
        Master,
        "DC/OS Package Manager (Cosmos)",
        COSMOS,
        "localhost",
        "localhost(master)",
    ),
    row(
        Single(8080),
        Tcp,
        Master,
        "Marathon",
        MARATHON,
        AM,
        "master",
    ),
    ee(row(
        Single(8101),
        Tcp,
        Master,
        "DC/OS Identity and Access Manager",
        &["dcos-bouncer.service"],
        "localhost",
        "localhost(master)",
    )),
    row(
        Single(8123),
        Tcp,
        Master,
        "Mesos DNS",
        MESOS_DNS,
        "localhost",
        "localhost",
    ),
    row(
        Single(8181),
        Tcp,
        Master,
        "Exhibitor and ZooKeeper",
        EXHIBITOR,
        AM,
        "master",
    ),
    ee(row(
        Single(8200),
        Tcp,
        Master,
        "Vault",
        &["dcos-vault.service"],
        "localhost",
        "localhost(master)",
    )),
    row(
        Single(8443),
        Tcp,
        Master,
        "Marathon SSL",
        MARATHON,
        AM,
        "master",
    ),
    ee(row(
        Single(8888),
        Tcp,
        Master,
        "DC/OS Certificate Authority",
        &["dcos-ca.service"],
        "localhost",
        "localhost(master)",
    )),
    row(
        Single(9090),
        Tcp,
        Master,
        "DC/OS Jobs (Metronome)",
        METRONOME,
        AM,
        "master",
    ),
    row(
        Single(9443),
        Tcp,
        Master,
        "DC/OS Jobs (Metronome) SSL",
        METRONOME,
        AM,
        "master",
    ),
    row(
        Single(9990),
        Tcp,
        Master,
        "DC/OS Package Manager (Cosmos)",
        COSMOS,
        "localhost",
        "localhost(master)",
    ),
    row(
        Single(15055),
        Tcp,
        Master,
        "DC/OS History",
        &["dcos-history-service.service"],
        "localhost",
        "localhost(master)",
    ),
    row(
        Single(15101),
        Tcp,
        Master,
        "Marathon libprocess",
        MARATHON,
        "master",
        AM,
    ),
    row(
        Single(15201),
        Tcp,
        Master,
        "DC/OS Jobs (Metronome) libprocess",
        METRONOME,
        "master",
        AM,
    ),
    row(
        Single(61053),
        Tcp,
        Master,
        "Mesos DNS",
        MESOS_DNS,
        AM,
        "master",
    ),
    ee(row(
        Single(61430),
        Tcp,
        Master,
        "DC/OS Net",
        NET,
        AM,
        "master",
    )),
    row(
        Ephemeral,
        Tcp,
        Master,
        "DC/OS Component Package Manager (Pkgpanda)",
        &["dcos-pkgpanda-api.service"],
        "None",
        "None",
    ),
    // Master, UDP.
    row(
        Single(61053),
        Udp,
        Master,
        "Mesos DNS",
        MESOS_DNS,
        AM,
        "master",
    ),
    // Agent, TCP.
    row(
        Single(5051),
        Tcp,
        Agent,
        "Mesos Agent",
        &["dcos-mesos-slave.service"],
        AM,
        "agent",
    ),
    row(
        Single(61001),
        Tcp,
        Agent,
        "Admin Router Agent (HTTP)",
        AR_AGENT,
        AM,
        "agent",
    ),
    row(
        Single(61002),
        Tcp,
        Agent,
        "Admin Router Agent (HTTPS)",
        AR_AGENT,
        AM,
        "agent",
    ),
    row(
        Range(1025, 2180),
        Tcp,
        Agent,
        TASKS,
        &["Any Mesos task"],
        AM,
        "agent",
    ),
    row(
        Range(2182, 3887),
        Tcp,
        Agent,
        TASKS,
        &["Any Mesos task"],
        AM,
        "agent",
    ),
    row(
        Range(3889, 5049),
        Tcp,
        Agent,
        TASKS,
        &["Any Mesos task"],
        AM,
        "agent",
    ),
    row(
        Range(5052, 8079),
        Tcp,
        Agent,
        TASKS,
        &["Any Mesos task"],
        AM,
        "agent",
    ),
    row(
        Range(8082, 8180),
        Tcp,
        Agent,
        TASKS,
        &["Any Mesos task"],
        AM,
        "agent",
    ),
    row(
        Range(8182, 32000),
        Tcp,
        Agent,
        TASKS,
        &["Any Mesos task"],
        AM,
        "agent",
    ),
    // Added: a three-master ZooKeeper ensemble needs its quorum port, which the page omits.
    added(row(
        Single(2888),
        Tcp,
        Master,
        "ZooKeeper quorum",
        EXHIBITOR,
        "master",
        "master",
    )),
    // Added: dcos-diagnostics. DC/OS 1.11 binds it on the masters' 1050, where the masters
    // pull each other's unit health and Admin Router reaches it; its ports page does not
    // list it. Agents serve it on a unix socket behind their Admin Router (61001).
    added(row(
        Single(1050),
        Tcp,
        Master,
        "DC/OS Diagnostics (dcos-diagnostics)",
        DIAGNOSTICS,
        "master",
        "master",
    )),
    added(row(
        Ephemeral,
        Tcp,
        Agent,
        "DC/OS Diagnostics (dcos-diagnostics, unix socket behind Admin Router)",
        DIAGNOSTICS,
        "None",
        "None",
    )),
    // Added: dcos-log, on every node a unix socket behind Admin Router (no port), as DC/OS
    // 1.11 runs it: the units are listed so that every node runs them.
    added(row(
        Ephemeral,
        Tcp,
        Master,
        "DC/OS Log (dcos-log, unix socket behind Admin Router)",
        &["dcos-log-master.service"],
        "None",
        "None",
    )),
    added(row(
        Ephemeral,
        Tcp,
        Agent,
        "DC/OS Log (dcos-log, unix socket behind Admin Router)",
        &["dcos-log-agent.service"],
        "None",
        "None",
    )),
    // Added: dcos-metrics' local StatsD collector, where each agent relays what its tasks
    // send to their own StatsD sockets (DC/OS 1.11's metrics module does the same).
    added(row(
        Single(8124),
        Udp,
        Agent,
        "dcos-metrics StatsD collector (local)",
        &["dcos-metrics-agent.service"],
        "localhost",
        "localhost",
    )),
    // Added: an air-gapped cluster's own image registry (optional, off by default), where
    // agents pull the images of their containers and operators push them; 5000 is the
    // Docker registry's own port (a co-located agent never hands it to a task).
    added(row(
        Single(5000),
        Tcp,
        Master,
        "Container image registry (cluster-local)",
        REGISTRY,
        AM,
        "master",
    )),
];

/// The rows that apply to a node of `role`.
pub fn rows_for(role: NodeRole) -> impl Iterator<Item = &'static PortRow> {
    CONTRACT.iter().filter(move |r| role.holds(r.section))
}

/// Every fixed port a component (not a task) binds on a node of `role`, for `protocol`.
pub fn component_ports(role: NodeRole, protocol: Protocol) -> RangeSet {
    rows_for(role)
        .filter(|r| r.protocol == protocol && !r.is_task_range())
        .fold(RangeSet::new(), |acc, r| acc.union(&r.ports()))
}

/// The agent's advertised task ranges on a node of `role`: the page's six ranges minus every
/// port a component on the same node uses (so a co-located master's 2888 or 15055 is never
/// handed to a task).
pub fn task_ranges(role: NodeRole) -> RangeSet {
    let all = CONTRACT
        .iter()
        .filter(|r| r.is_task_range())
        .fold(RangeSet::new(), |acc, r| acc.union(&r.ports()));
    if !role.is_agent() {
        return RangeSet::new();
    }
    all.subtract(&component_ports(role, Protocol::Tcp))
}

/// The distinct systemd units of a role's component rows, in the page's order.
pub fn units_for(role: NodeRole) -> Vec<&'static str> {
    let mut units = Vec::new();
    for r in rows_for(role).filter(|r| !r.is_task_range()) {
        for u in r.units {
            if unit_applies(role, u) && !units.contains(u) {
                units.push(*u);
            }
        }
    }
    units
}

/// The rows of one unit on a node of `role`.
pub fn rows_of_unit(role: NodeRole, unit: &str) -> impl Iterator<Item = &'static PortRow> + '_ {
    rows_for(role).filter(move |r| r.has_unit(unit))
}

/// The metrics row names a master and an agent unit for one port: each node runs its own.
fn unit_applies(role: NodeRole, unit: &str) -> bool {
    match unit {
        "dcos-metrics-master.service" => role.is_master(),
        "dcos-metrics-agent.service" => role.is_agent(),
        _ => true,
    }
}

/// One socket a unit listens on: a row of the contract, bound where its scope says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bind {
    /// The contract row (its port, protocol, scope, and whether it is enterprise-only).
    pub row: &'static PortRow,
    /// The address to bind.
    pub addr: SocketAddr,
}

impl Bind {
    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// TCP or UDP.
    pub fn protocol(&self) -> Protocol {
        self.row.protocol
    }

    /// Where a client on the same node reaches the listener: the bound address, or loopback
    /// for a listener bound on every address.
    pub fn connect_addr(&self) -> SocketAddr {
        if self.addr.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.addr.port())
        } else {
            self.addr
        }
    }
}

/// Every socket one unit listens on, on one node: what [`bind_addrs`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binds {
    unit: &'static str,
    binds: Vec<Bind>,
}

impl Binds {
    /// The unit, as the contract names it.
    pub fn unit(&self) -> &'static str {
        self.unit
    }

    /// Every socket, in the contract's row order (a row bound on loopback too gives two).
    pub fn iter(&self) -> std::slice::Iter<'_, Bind> {
        self.binds.iter()
    }

    /// Every address the unit binds `port` on for `protocol`: the row's own address first,
    /// then 127.0.0.1 for a row bound there too.
    pub fn addrs(&self, protocol: Protocol, port: u16) -> Result<Vec<SocketAddr>, BindError> {
        let addrs: Vec<SocketAddr> = self
            .binds
            .iter()
            .filter(|b| b.protocol() == protocol && b.port() == port)
            .map(|b| b.addr)
            .collect();
        if addrs.is_empty() {
            return Err(BindError::NoPort {
                unit: self.unit,
                protocol,
                port,
            });
        }
        Ok(addrs)
    }

    /// The socket of the unit's `port` for `protocol` at the row's own address (see
    /// [`Binds::addrs`]).
    pub fn get(&self, protocol: Protocol, port: u16) -> Result<&Bind, BindError> {
        self.binds
            .iter()
            .find(|b| b.protocol() == protocol && b.port() == port)
            .ok_or(BindError::NoPort {
                unit: self.unit,
                protocol,
                port,
            })
    }

    /// The address the unit binds TCP `port` on (the row's own; see [`Binds::addrs`]).
    pub fn tcp(&self, port: u16) -> Result<SocketAddr, BindError> {
        self.get(Protocol::Tcp, port).map(|b| b.addr)
    }

    /// The address the unit binds UDP `port` on (the row's own; see [`Binds::addrs`]).
    pub fn udp(&self, port: u16) -> Result<SocketAddr, BindError> {
        self.get(Protocol::Udp, port).map(|b| b.addr)
    }

    /// Where a client on the same node connects to the unit's TCP `port`
    /// ([`Bind::connect_addr`]): how Admin Router reaches its upstreams.
    pub fn connect_tcp(&self, port: u16) -> Result<SocketAddr, BindError> {
        self.get(Protocol::Tcp, port).map(Bind::connect_addr)
    }
}

impl<'a> IntoIterator for &'a Binds {
    type Item = &'a Bind;
    type IntoIter = std::slice::Iter<'a, Bind>;

    fn into_iter(self) -> Self::IntoIter {
        self.binds.iter()
    }
}

/// A unit or port that the contract does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// No row of the contract names the unit.
    #[error("{unit:?} is not a unit of the port contract; `dcos ports list` shows its units")]
    UnknownUnit {
        /// The name given.
        unit: String,
    },
    /// The unit does not run on a node of this role.
    #[error("{unit} does not run on a {role} node")]
    NotOnRole {
        /// The unit.
        unit: &'static str,
        /// The role.
        role: NodeRole,
    },
    /// The unit has no such port in the contract.
    #[error("{unit} has no port {port}/{protocol} in the port contract")]
    NoPort {
        /// The unit.
        unit: &'static str,
        /// The protocol asked for.
        protocol: Protocol,
        /// The port asked for.
        port: u16,
    },
}

/// Every socket `unit` listens on, on a node of `role` whose cluster IP is `node_ip`: each of
/// its fixed-port rows (enterprise rows too; [`Bind::row`] says which) on the address its
/// scope gives, `localhost` rows on 127.0.0.1, `agent/master` rows on `node_ip`, `public IP`
/// rows on every address (0.0.0.0), and dcos-net's resolver on loopback as well. A unit whose
/// rows have no fixed port (the Pkgpanda API, the tasks) has none.
///
/// Every unit takes its listen addresses from here, and whoever connects to a unit (Admin
/// Router's upstreams, the supervisor's readiness check) reaches it where it listens.
pub fn bind_addrs(unit: &str, role: NodeRole, node_ip: IpAddr) -> Result<Binds, BindError> {
    let Some(name) = CONTRACT
        .iter()
        .flat_map(|r| r.units.iter().copied())
        .find(|u| *u == unit)
    else {
        return Err(BindError::UnknownUnit { unit: unit.into() });
    };
    if !unit_applies(role, name) || rows_of_unit(role, name).next().is_none() {
        return Err(BindError::NotOnRole { unit: name, role });
    }
    let binds = rows_of_unit(role, name)
        .flat_map(|row| {
            row.bind_addrs(node_ip)
                .into_iter()
                .map(move |addr| Bind { row, addr })
        })
        .collect();
    Ok(Binds { unit: name, binds })
}

/// One row as `dcos ports list --output json` prints it.
#[derive(Debug, Serialize)]
pub struct PortRowJson {
    /// The port, or null for a range or an ephemeral row.
    pub port: Option<u16>,
    /// `[start, end]` for a range row, else null.
    pub range: Option<[u16; 2]>,
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// `all`, `master` or `agent`.
    pub roles: Vec<Section>,
    /// The component, as the page names it.
    pub component: &'static str,
    /// The systemd units.
    pub units: &'static [&'static str],
    /// The Source column.
    pub source: &'static str,
    /// The Destination column.
    pub destination: &'static str,
    /// Enterprise-only row.
    pub enterprise: bool,
    /// False only for rows this project adds.
    pub in_spec: bool,
    /// `localhost`, `cluster` or `any`.
    pub bind: BindScope,
}

impl From<&PortRow> for PortRowJson {
    fn from(r: &PortRow) -> Self {
        let (port, range) = match r.port {
            PortSpec::Single(p) => (Some(p), None),
            PortSpec::Range(b, e) => (None, Some([b, e])),
            PortSpec::Ephemeral => (None, None),
        };
        PortRowJson {
            port,
            range,
            protocol: r.protocol,
            roles: vec![r.section],
            component: r.component,
            units: r.units,
            source: r.source,
            destination: r.destination,
            enterprise: r.enterprise,
            in_spec: r.in_spec,
            bind: r.bind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

    fn at(ip: IpAddr, port: u16) -> SocketAddr {
        SocketAddr::new(ip, port)
    }

    fn all(binds: &Binds) -> Vec<(u16, Protocol, SocketAddr)> {
        binds
            .iter()
            .map(|b| (b.port(), b.protocol(), b.addr))
            .collect()
    }

    #[test]
    fn a_localhost_row_binds_loopback_only() {
        let history = bind_addrs("dcos-history-service.service", NodeRole::Master, IP).unwrap();
        assert_eq!(history.unit(), "dcos-history-service.service");
        assert_eq!(all(&history), vec![(15055, Protocol::Tcp, at(LO, 15055))]);
        assert_eq!(history.connect_tcp(15055), Ok(at(LO, 15055)));
    }

    #[test]
    fn cluster_rows_bind_the_nodes_ip_tcp_and_udp() {
        let dns = bind_addrs("dcos-mesos-dns.service", NodeRole::Master, IP).unwrap();
        assert_eq!(
            all(&dns),
            vec![
                (8123, Protocol::Tcp, at(LO, 8123)),
                (61053, Protocol::Tcp, at(IP, 61053)),
                (61053, Protocol::Udp, at(IP, 61053)),
            ]
        );
        assert_eq!(dns.udp(61053), Ok(at(IP, 61053)));
        assert_eq!(dns.tcp(61053), Ok(at(IP, 61053)));
        assert_eq!(dns.tcp(8123), Ok(at(LO, 8123)));
        let marathon = bind_addrs("dcos-marathon.service", NodeRole::Master, IP).unwrap();
        for port in [8080, 8443, 15101] {
            assert_eq!(marathon.tcp(port), Ok(at(IP, port)));
            assert_eq!(marathon.connect_tcp(port), Ok(at(IP, port)));
        }
    }

    #[test]
    fn public_rows_bind_every_address_and_are_reached_on_loopback() {
        let ar = bind_addrs("dcos-adminrouter.service", NodeRole::Master, IP).unwrap();
        assert_eq!(
            all(&ar),
            vec![
                (80, Protocol::Tcp, at(ANY, 80)),
                (443, Protocol::Tcp, at(ANY, 443))
            ]
        );
        assert_eq!(ar.connect_tcp(80), Ok(at(LO, 80)));
        assert!(ar.iter().all(|b| b.row.bind() == BindScope::Any));
    }

    #[test]
    fn an_agents_units_bind_its_ip() {
        let agent = bind_addrs("dcos-mesos-slave.service", NodeRole::Agent, IP).unwrap();
        assert_eq!(all(&agent), vec![(5051, Protocol::Tcp, at(IP, 5051))]);
        let ar = bind_addrs("dcos-adminrouter-agent", NodeRole::AgentPublic, IP).unwrap();
        assert_eq!(ar.tcp(61001), Ok(at(IP, 61001)));
        assert_eq!(ar.tcp(61002), Ok(at(IP, 61002)));
        // A master that is also an agent runs both.
        assert!(bind_addrs("dcos-mesos-slave.service", NodeRole::MasterAgent, IP).is_ok());
        assert!(bind_addrs("dcos-mesos-master.service", NodeRole::MasterAgent, IP).is_ok());
    }

    #[test]
    fn the_resolver_binds_loopback_too_udp_and_tcp() {
        let net = bind_addrs("dcos-net.service", NodeRole::Agent, IP).unwrap();
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            assert_eq!(
                net.addrs(protocol, 53),
                Ok(vec![at(IP, 53), at(LO, 53)]),
                "{protocol}"
            );
        }
        assert_eq!(net.udp(53), Ok(at(IP, 53)));
        for port in [61420, 62080, 62501] {
            assert_eq!(net.addrs(Protocol::Tcp, port), Ok(vec![at(IP, port)]));
        }
        // On a node whose IP is loopback, once.
        let local = bind_addrs("dcos-net.service", NodeRole::MasterAgent, LO).unwrap();
        assert_eq!(local.addrs(Protocol::Udp, 53), Ok(vec![at(LO, 53)]));
        // Enterprise rows are there, marked.
        let master = bind_addrs("dcos-net.service", NodeRole::Master, IP).unwrap();
        assert!(master.iter().any(|b| b.port() == 61430 && b.row.enterprise));
        assert!(!net.iter().any(|b| b.port() == 61430));
    }

    #[test]
    fn an_unknown_unit_a_unit_of_another_role_and_an_unknown_port_are_errors() {
        assert_eq!(
            bind_addrs("dcos-nonesuch.service", NodeRole::Master, IP),
            Err(BindError::UnknownUnit {
                unit: "dcos-nonesuch.service".into()
            })
        );
        assert_eq!(
            bind_addrs("dcos-mesos-master.service", NodeRole::Agent, IP),
            Err(BindError::NotOnRole {
                unit: "dcos-mesos-master.service",
                role: NodeRole::Agent
            })
        );
        assert_eq!(
            bind_addrs("dcos-mesos-slave.service", NodeRole::Master, IP),
            Err(BindError::NotOnRole {
                unit: "dcos-mesos-slave.service",
                role: NodeRole::Master
            })
        );
        // The metrics row names one unit per role.
        assert!(bind_addrs("dcos-metrics-master.service", NodeRole::Agent, IP).is_err());
        assert!(bind_addrs("dcos-metrics-agent.service", NodeRole::Agent, IP).is_ok());
        let master = bind_addrs("dcos-mesos-master.service", NodeRole::Master, IP).unwrap();
        let no_port = BindError::NoPort {
            unit: "dcos-mesos-master.service",
            protocol: Protocol::Udp,
            port: 5050,
        };
        assert_eq!(master.udp(5050), Err(no_port.clone()));
        assert_eq!(master.addrs(Protocol::Udp, 5050), Err(no_port.clone()));
        assert_eq!(
            no_port.to_string(),
            "dcos-mesos-master.service has no port 5050/udp in the port contract"
        );
        assert!(master.tcp(5051).is_err());
    }

    #[test]
    fn units_without_a_fixed_port_bind_nothing() {
        let pkgpanda = bind_addrs("dcos-pkgpanda-api.service", NodeRole::Master, IP).unwrap();
        assert_eq!(pkgpanda.iter().count(), 0);
        let tasks = bind_addrs("Any Mesos task", NodeRole::Agent, IP).unwrap();
        assert_eq!(tasks.iter().count(), 0);
    }
}
