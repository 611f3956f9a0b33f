//! The port contract: every row of the DC/OS 1.11 "Ports" page as typed data.
//!
//! The table is the project's own copy of the page's facts. A row's bind scope is derived
//! from its Source/Destination columns: localhost rows bind 127.0.0.1, `public IP` rows bind
//! every address, the rest bind the node's cluster IP.

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
}

const NET: &[&str] = &["dcos-net.service"];
const EXHIBITOR: &[&str] = &["dcos-exhibitor.service"];
const REGISTRY: &[&str] = &["dcos-registry.service"];
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

use PortSpec::{Ephemeral, Range, Single};
use Protocol::{Tcp, Udp};
use Section::{Agent, All, Master};

/// Every row of the page, in the page's order, then the rows this project adds.
pub static CONTRACT: &[PortRow] = &[
    // All nodes, TCP.
    row(Single(53), Tcp, All, "DC/OS Net", NET, AM, AM),
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
    row(Single(53), Udp, All, "DC/OS Net", NET, AM, AM),
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
