//! What dcos-diagnostics reports: each node's units with their health, and the cluster's
//! view the masters aggregate from every node (`/units`, `/nodes` and their drill-downs, the
//! report), in dcos-diagnostics' JSON shapes.
//!
//! Health is DC/OS' number: 0 healthy, 1 unhealthy. A node that cannot be asked is 1 too,
//! with the reason as its units' output (dcos-diagnostics' internal "unknown" never leaves
//! it: clients accept only 0 and 1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Healthy.
pub const HEALTHY: u8 = 0;
/// Unhealthy.
pub const UNHEALTHY: u8 = 1;

/// One unit on one node, as the node reports it (the 6 keys of `/system/health/v1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// The systemd unit (`dcos-mesos-master.service`).
    pub id: String,
    /// 0 or 1.
    pub health: u8,
    /// Why it is unhealthy, with the tail of its log; empty when healthy.
    pub output: String,
    /// The unit's description.
    pub description: String,
    /// What to do about it.
    pub help: String,
    /// Its name (the description up to `": "`).
    pub name: String,
}

/// One node's own report: `GET /system/health/v1` on the node (7 keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// Its units.
    pub units: Vec<Unit>,
    /// Its host name (DC/OS uses the IP).
    pub hostname: String,
    /// Its IP.
    pub ip: String,
    /// The DC/OS version.
    pub dcos_version: String,
    /// `master`, `agent` or `agent_public`.
    pub node_role: String,
    /// Its Mesos id (the agent's id; a master's own id).
    pub mesos_id: String,
    /// This service's version.
    pub dcos_diagnostics_version: String,
}

impl NodeHealth {
    /// The node's health: the worst of its units'.
    pub fn health(&self) -> u8 {
        self.units.iter().map(|u| u.health).max().unwrap_or(HEALTHY)
    }

    /// A node that did not answer: its role and IP known, every unit it was last seen with
    /// unhealthy with `why`.
    pub fn unreachable(ip: &str, role: &str, mesos_id: &str, known: &[Unit], why: &str) -> Self {
        let output = format!("The node's dcos-diagnostics did not answer: {why}");
        let mut units: Vec<Unit> = known
            .iter()
            .map(|u| Unit {
                health: UNHEALTHY,
                output: output.clone(),
                ..u.clone()
            })
            .collect();
        // Never seen: its own dcos-diagnostics stands for it, unhealthy.
        if units.is_empty() {
            let description =
                "DC/OS Diagnostics: collects and serves the health of DC/OS components";
            units.push(Unit {
                id: "dcos-diagnostics.service".into(),
                health: UNHEALTHY,
                output,
                description: description.into(),
                help: format!("Check the node {ip}: is `dcos node run` running there?"),
                name: unit_name(description),
            });
        }
        NodeHealth {
            units,
            hostname: ip.to_string(),
            ip: ip.to_string(),
            dcos_version: String::new(),
            node_role: role.to_string(),
            mesos_id: mesos_id.to_string(),
            dcos_diagnostics_version: String::new(),
        }
    }
}

/// A unit's name: its description up to the first `": "`, as dcos-diagnostics splits
/// systemd's `Description`.
pub fn unit_name(description: &str) -> String {
    description
        .split_once(": ")
        .map_or(description, |(name, _)| name)
        .to_string()
}

/// The cluster as the masters last pulled it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    /// Every node, by IP.
    pub nodes: BTreeMap<String, NodeHealth>,
    /// The leading master's IP, if known.
    pub leader: Option<String>,
    /// When it was pulled (RFC 3339).
    pub updated: String,
}

/// Why a lookup found nothing: dcos-diagnostics answers these with 500 and plain text.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotFound {
    /// No node has the unit.
    #[error("Unit {0} not found")]
    Unit(String),
    /// No such node.
    #[error("Node {0} not found")]
    Node(String),
    /// The node has no such unit.
    #[error("Unit {unit} not found on node {node}")]
    UnitOnNode {
        /// The unit.
        unit: String,
        /// The node.
        node: String,
    },
}

fn short_unit(u: &Unit, health: u8) -> Value {
    json!({"id": u.id, "name": u.name, "health": health, "description": u.description})
}

impl Cluster {
    fn unit_nodes<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = (&'a NodeHealth, &'a Unit)> + 'a {
        self.nodes
            .values()
            .filter_map(move |n| n.units.iter().find(|u| u.id == id).map(|u| (n, u)))
    }

    /// `/units`: every unit of any node, with its worst health.
    pub fn units(&self) -> Value {
        let mut by_id: BTreeMap<&str, (&Unit, u8)> = BTreeMap::new();
        for node in self.nodes.values() {
            for unit in &node.units {
                let entry = by_id.entry(&unit.id).or_insert((unit, HEALTHY));
                entry.1 = entry.1.max(unit.health);
            }
        }
        let units: Vec<Value> = by_id.values().map(|(u, h)| short_unit(u, *h)).collect();
        json!({"units": units})
    }

    /// `/units/{unit}`.
    pub fn unit(&self, id: &str) -> Result<Value, NotFound> {
        let mut found = self.unit_nodes(id).peekable();
        let (_, first) = *found.peek().ok_or_else(|| NotFound::Unit(id.into()))?;
        let health = found.map(|(_, u)| u.health).max().unwrap_or(HEALTHY);
        Ok(short_unit(first, health))
    }

    /// `/units/{unit}/nodes`.
    pub fn unit_nodes_view(&self, id: &str) -> Result<Value, NotFound> {
        let nodes: Vec<Value> = self
            .unit_nodes(id)
            .map(|(n, u)| json!({"host_ip": n.ip, "health": u.health, "role": n.node_role}))
            .collect();
        if nodes.is_empty() {
            return Err(NotFound::Unit(id.into()));
        }
        Ok(json!({"nodes": nodes}))
    }

    /// `/units/{unit}/nodes/{ip}`.
    pub fn unit_on_node(&self, id: &str, ip: &str) -> Result<Value, NotFound> {
        let (node, unit) = self.node_and_unit(ip, id)?;
        Ok(
            json!({"host_ip": node.ip, "health": unit.health, "role": node.node_role,
            "output": unit.output, "help": unit.help}),
        )
    }

    fn node_health(&self, ip: &str) -> Result<&NodeHealth, NotFound> {
        self.nodes.get(ip).ok_or_else(|| NotFound::Node(ip.into()))
    }

    /// Node `ip` and its unit `id`.
    fn node_and_unit(&self, ip: &str, id: &str) -> Result<(&NodeHealth, &Unit), NotFound> {
        let node = self.node_health(ip)?;
        let unit = node
            .units
            .iter()
            .find(|u| u.id == id)
            .ok_or_else(|| NotFound::UnitOnNode {
                unit: id.into(),
                node: ip.into(),
            })?;
        Ok((node, unit))
    }

    /// `/nodes`.
    pub fn nodes_view(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .values()
            .map(|n| json!({"host_ip": n.ip, "health": n.health(), "role": n.node_role}))
            .collect();
        json!({"nodes": nodes})
    }

    /// `/nodes/{ip}`.
    pub fn node(&self, ip: &str) -> Result<Value, NotFound> {
        let n = self.node_health(ip)?;
        Ok(json!({"host_ip": n.ip, "health": n.health(), "role": n.node_role}))
    }

    /// `/nodes/{ip}/units`.
    pub fn node_units(&self, ip: &str) -> Result<Value, NotFound> {
        let n = self.node_health(ip)?;
        let units: Vec<Value> = n.units.iter().map(|u| short_unit(u, u.health)).collect();
        Ok(json!({"units": units}))
    }

    /// `/nodes/{ip}/units/{unit}`: the node's whole report of the unit.
    pub fn node_unit(&self, ip: &str, id: &str) -> Result<Value, NotFound> {
        let (_, unit) = self.node_and_unit(ip, id)?;
        Ok(serde_json::to_value(unit).expect("a unit serializes"))
    }

    fn report_node(&self, n: &NodeHealth, only: Option<&str>) -> Value {
        let units: Vec<&Unit> = n
            .units
            .iter()
            .filter(|u| only.is_none_or(|id| u.id == id))
            .collect();
        let output: BTreeMap<&str, &str> = units
            .iter()
            .map(|u| (u.id.as_str(), u.output.as_str()))
            .collect();
        let mut node = json!({
            "Leader": self.leader.as_deref() == Some(n.ip.as_str()),
            "Role": n.node_role,
            "IP": n.ip,
            "Host": n.hostname,
            "Health": n.health(),
            "Output": output,
            "MesosID": n.mesos_id,
        });
        if only.is_none() {
            node["Units"] = json!(units
                .iter()
                .map(
                    |u| json!({"UnitName": u.id, "Health": u.health, "Title": u.name,
                    "PrettyName": u.name, "Timestamp": self.updated})
                )
                .collect::<Vec<_>>());
        }
        node
    }

    /// `/report`: every unit with its nodes, every node with its units.
    pub fn report(&self) -> Value {
        let mut units = serde_json::Map::new();
        let ids: std::collections::BTreeSet<&str> = self
            .nodes
            .values()
            .flat_map(|n| n.units.iter().map(|u| u.id.as_str()))
            .collect();
        for id in ids {
            let nodes: Vec<(&NodeHealth, &Unit)> = self.unit_nodes(id).collect();
            let Some((_, first)) = nodes.first() else {
                continue;
            };
            units.insert(
                id.to_string(),
                json!({
                    "UnitName": id,
                    "Nodes": nodes.iter().map(|(n, _)| self.report_node(n, Some(id))).collect::<Vec<_>>(),
                    "Health": nodes.iter().map(|(_, u)| u.health).max().unwrap_or(HEALTHY),
                    "Title": first.name,
                    "Timestamp": self.updated,
                    "PrettyName": first.name,
                }),
            );
        }
        let nodes: serde_json::Map<String, Value> = self
            .nodes
            .values()
            .map(|n| (n.ip.clone(), self.report_node(n, None)))
            .collect();
        json!({"Units": units, "Nodes": nodes, "UpdatedTime": self.updated})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: &str, health: u8) -> Unit {
        Unit {
            id: id.into(),
            health,
            output: if health == 0 {
                String::new()
            } else {
                format!("{id} is down")
            },
            description: format!("{id}: does things"),
            help: "look at its log".into(),
            name: id.into(),
        }
    }

    fn node(ip: &str, role: &str, units: Vec<Unit>) -> NodeHealth {
        NodeHealth {
            units,
            hostname: ip.into(),
            ip: ip.into(),
            dcos_version: "1.11.0".into(),
            node_role: role.into(),
            mesos_id: format!("id-{ip}"),
            dcos_diagnostics_version: "0.1.0".into(),
        }
    }

    fn cluster() -> Cluster {
        let mut c = Cluster {
            leader: Some("10.0.0.1".into()),
            updated: "2026-12-07T00:00:00Z".into(),
            ..Cluster::default()
        };
        c.nodes.insert(
            "10.0.0.1".into(),
            node("10.0.0.1", "master", vec![unit("m", 0), unit("net", 0)]),
        );
        c.nodes.insert(
            "10.0.0.2".into(),
            node("10.0.0.2", "agent", vec![unit("a", 1), unit("net", 1)]),
        );
        c
    }

    #[test]
    fn views_have_dcos_diagnostics_key_sets() {
        let c = cluster();
        let units = c.units();
        let units = units["units"].as_array().unwrap();
        assert_eq!(units.len(), 3);
        assert!(units.iter().all(|u| u.as_object().unwrap().len() == 4));
        let net = units.iter().find(|u| u["id"] == "net").unwrap();
        assert_eq!(net["health"], 1, "the worst of its nodes");
        assert_eq!(c.unit("net").unwrap()["health"], 1);
        let nodes = c.unit_nodes_view("net").unwrap();
        assert_eq!(nodes["nodes"].as_array().unwrap().len(), 2);
        let one = c.unit_on_node("net", "10.0.0.2").unwrap();
        assert_eq!(one.as_object().unwrap().len(), 5);
        assert_eq!(one["output"], "net is down");
        let all = c.nodes_view();
        assert_eq!(
            all["nodes"][1],
            json!({"host_ip": "10.0.0.2", "health": 1, "role": "agent"})
        );
        assert_eq!(c.node("10.0.0.1").unwrap()["health"], 0);
        assert_eq!(
            c.node_units("10.0.0.2").unwrap()["units"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            c.node_unit("10.0.0.2", "a")
                .unwrap()
                .as_object()
                .unwrap()
                .len(),
            6
        );
    }

    #[test]
    fn unknown_units_and_nodes_are_named() {
        let c = cluster();
        assert_eq!(c.unit("x").unwrap_err().to_string(), "Unit x not found");
        assert_eq!(
            c.node("10.9.9.9").unwrap_err().to_string(),
            "Node 10.9.9.9 not found"
        );
        assert!(c.unit_on_node("m", "10.0.0.2").is_err());
        assert!(c.node_unit("10.0.0.1", "a").is_err());
        assert!(c.unit_nodes_view("x").is_err());
    }

    #[test]
    fn the_report_lists_units_with_nodes_and_nodes_with_units() {
        let report = cluster().report();
        assert_eq!(report["Units"]["net"]["Nodes"].as_array().unwrap().len(), 2);
        assert_eq!(report["Units"]["net"]["Health"], 1);
        assert_eq!(report["Nodes"]["10.0.0.1"]["Leader"], true);
        assert_eq!(
            report["Nodes"]["10.0.0.2"]["Units"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(report["Nodes"]["10.0.0.2"]["Output"]["a"], "a is down");
    }

    #[test]
    fn names_are_descriptions_up_to_the_colon() {
        assert_eq!(
            unit_name("DC/OS History: caches and exposes"),
            "DC/OS History"
        );
        assert_eq!(unit_name("Plain"), "Plain");
    }

    #[test]
    fn an_unreachable_node_is_unhealthy_with_the_reason() {
        let n = NodeHealth::unreachable("10.0.0.3", "agent", "", &[unit("a", 0)], "timed out");
        assert_eq!(n.health(), 1);
        assert!(n.units[0].output.contains("timed out"));
        let never = NodeHealth::unreachable("10.0.0.4", "agent", "", &[], "refused");
        assert_eq!((never.health(), never.units.len()), (1, 1));
    }
}
