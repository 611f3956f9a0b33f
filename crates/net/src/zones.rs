//! The zones dcos-net answers itself, as dcos-net's `dcos_dns` serves them: every record has
//! TTL 5, every zone the SOA `ns.spartan. support.mesosphere.com.`.
//!
//! Node-local zones are made at start ([`local_zones`]): `spartan` (`ready.spartan`), `zk`
//! (`zk-1.zk` … `zk-5.zk` over the masters), `localhost`, `thisnode.thisdcos.directory`.
//! Cluster zones are made on the masters from the leading Mesos master's state
//! ([`cluster_records`]) and gossiped to every node: `dcos.thisdcos.directory` (leader,
//! masters, and each running task by agent IP, container IP or the automatic choice) and
//! `mesos.thisdcos.directory`, Mesos-DNS' names under dcos-net's domain.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use dcos_mesos_dns::records::{self, domain_frag, host_ports, label, pid_addr, Naming};
use dcos_mesos_dns::zone::{Records, Soa, Zone};
use serde_json::Value;

/// The TTL of dcos-net's records.
pub const TTL: u32 = 5;
/// The zone made from the Mesos state by dcos-net itself.
pub const DCOS: &str = "dcos.thisdcos.directory.";
/// Mesos-DNS' names, mirrored under dcos-net's domain.
pub const MESOS_MIRROR: &str = "mesos.thisdcos.directory.";
/// The parent of the cluster zones: a name below it in no known zone is NXDOMAIN.
pub const THISDCOS: &str = "thisdcos.directory.";

/// A zone of dcos-net's, with its SOA.
pub fn zone(domain: &str, records: Records) -> Zone {
    Zone {
        domain: domain.to_string(),
        ttl: TTL,
        soa: Soa {
            mname: "ns.spartan.".into(),
            rname: "support.mesosphere.com.".into(),
            refresh: 60,
            retry: 180,
            expire: 86400,
            minttl: 1,
        },
        serial: 1,
        records,
    }
}

/// The zones every node makes for itself.
pub fn local_zones(node_ip: Ipv4Addr, masters: &[Ipv4Addr]) -> Vec<Arc<Zone>> {
    let mut spartan = Records::default();
    spartan.insert_a("ready.spartan.", Ipv4Addr::LOCALHOST);
    spartan.insert_a("ns.spartan.", node_ip);
    let mut zk = Records::default();
    // Five names over however many masters, round-robin, so a ZooKeeper connect string of
    // `zk-1.zk:2181,…,zk-5.zk:2181` works for any ensemble size.
    for (i, ip) in masters.iter().cycle().take(5).enumerate() {
        zk.insert_a(&format!("zk-{}.zk.", i + 1), *ip);
    }
    let mut localhost = Records::default();
    localhost.insert_a("localhost.", Ipv4Addr::LOCALHOST);
    let mut thisnode = Records::default();
    thisnode.insert_a("thisnode.thisdcos.directory.", node_ip);
    vec![
        Arc::new(zone("spartan.", spartan)),
        Arc::new(zone("zk.", zk)),
        Arc::new(zone("localhost.", localhost)),
        Arc::new(zone("thisnode.thisdcos.directory.", thisnode)),
        Arc::new(zone(THISDCOS, Records::default())),
    ]
}

/// The cluster zones' records from a leading master's `/master/state` (`Null`: none).
pub fn cluster_records(state: &Value, masters: &[Ipv4Addr]) -> BTreeMap<String, Records> {
    let mut zones = BTreeMap::new();
    if state.is_null() {
        return zones;
    }
    zones.insert(DCOS.to_string(), dcos_directory(state, masters));
    let naming = Naming {
        domain: MESOS_MIRROR.trim_end_matches('.').to_string(),
        masters: masters.iter().map(|ip| format!("{ip}:5050")).collect(),
        listener: masters.first().copied().unwrap_or(Ipv4Addr::LOCALHOST),
        ip_sources: records::DCOS_IP_SOURCES.to_vec(),
        rfc952: false,
        mname: format!("ns1.{MESOS_MIRROR}"),
    };
    zones.insert(MESOS_MIRROR.to_string(), records::generate(state, &naming));
    zones
}

/// `dcos.thisdcos.directory`: `leader`, `master`, and `<task>.<framework>.{agentip,
/// containerip,autoip}` for every running task.
fn dcos_directory(state: &Value, masters: &[Ipv4Addr]) -> Records {
    let mut r = Records::default();
    if let Some((ip, _)) = state["leader"].as_str().and_then(pid_addr) {
        r.insert_a(&format!("leader.{DCOS}"), ip);
    }
    for ip in masters {
        r.insert_a(&format!("master.{DCOS}"), *ip);
    }
    let agents: BTreeMap<&str, Ipv4Addr> = state["slaves"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a["id"].as_str()?, pid_addr(a["pid"].as_str()?)?.0)))
        .collect();
    for fw in state["frameworks"].as_array().into_iter().flatten() {
        let fname = domain_frag(fw["name"].as_str().unwrap_or(""), false);
        for task in fw["tasks"].as_array().into_iter().flatten() {
            if task["state"] != "TASK_RUNNING" || fname.is_empty() {
                continue;
            }
            let Some(&agent_ip) = task["slave_id"].as_str().and_then(|id| agents.get(id)) else {
                continue;
            };
            let name = task
                .pointer("/discovery/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .or_else(|| task["name"].as_str())
                .map(|n| label(n, false))
                .unwrap_or_default();
            if name.is_empty() {
                continue;
            }
            let container_ips = records::task_ips(task, agent_ip, &[records::IpSource::Netinfo]);
            let auto: Vec<Ipv4Addr> = if !host_ports(task).is_empty() || container_ips.is_empty() {
                vec![agent_ip]
            } else {
                container_ips.clone()
            };
            let base = format!("{name}.{fname}");
            r.insert_a(&format!("{base}.agentip.{DCOS}"), agent_ip);
            for ip in &container_ips {
                r.insert_a(&format!("{base}.containerip.{DCOS}"), *ip);
            }
            for ip in auto {
                r.insert_a(&format!("{base}.autoip.{DCOS}"), ip);
            }
        }
    }
    r
}

/// The IPv4 addresses among `ips`.
pub fn ipv4s(ips: &[IpAddr]) -> Vec<Ipv4Addr> {
    ips.iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn zk_names_cycle_over_the_masters() {
        let zones = local_zones(
            ip("10.0.0.9"),
            &[ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")],
        );
        let zk = zones.iter().find(|z| z.domain == "zk.").unwrap();
        let at = |n: &str| zk.records.a[n].iter().copied().collect::<Vec<_>>();
        assert_eq!(at("zk-1.zk."), vec![ip("10.0.0.1")]);
        assert_eq!(at("zk-3.zk."), vec![ip("10.0.0.3")]);
        assert_eq!(at("zk-4.zk."), vec![ip("10.0.0.1")]);
        assert_eq!(at("zk-5.zk."), vec![ip("10.0.0.2")]);
        let spartan = zones.iter().find(|z| z.domain == "spartan.").unwrap();
        assert!(spartan.records.a["ready.spartan."].contains(&Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn tasks_get_agentip_containerip_and_autoip_names() {
        let state = json!({
            "leader": "master@10.0.0.1:5050",
            "slaves": [{"id": "S1", "pid": "slave(1)@10.0.0.5:5051"}],
            "frameworks": [{"name": "marathon", "tasks": [
                {"name": "web.group", "state": "TASK_RUNNING", "slave_id": "S1",
                 "resources": {"ports": "[31000-31000]"}},
                {"name": "db", "state": "TASK_RUNNING", "slave_id": "S1",
                 "statuses": [{"state": "TASK_RUNNING", "container_status": {"network_infos": [
                    {"ip_addresses": [{"ip_address": "9.0.0.2"}]}]}}]},
                {"name": "gone", "state": "TASK_KILLED", "slave_id": "S1"}
            ]}]
        });
        let zones = cluster_records(&state, &[ip("10.0.0.1")]);
        let dcos = &zones[DCOS];
        let at = |n: &str| {
            dcos.a
                .get(n)
                .map(|s| s.iter().copied().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(at("leader.dcos.thisdcos.directory."), vec![ip("10.0.0.1")]);
        assert_eq!(at("master.dcos.thisdcos.directory."), vec![ip("10.0.0.1")]);
        // A task with host ports: autoip is the agent.
        assert_eq!(
            at("web-group.marathon.agentip.dcos.thisdcos.directory."),
            vec![ip("10.0.0.5")]
        );
        assert_eq!(
            at("web-group.marathon.autoip.dcos.thisdcos.directory."),
            vec![ip("10.0.0.5")]
        );
        assert!(at("web-group.marathon.containerip.dcos.thisdcos.directory.").is_empty());
        // A task on its own network: autoip is its container address.
        assert_eq!(
            at("db.marathon.containerip.dcos.thisdcos.directory."),
            vec![ip("9.0.0.2")]
        );
        assert_eq!(
            at("db.marathon.autoip.dcos.thisdcos.directory."),
            vec![ip("9.0.0.2")]
        );
        assert!(at("gone.marathon.agentip.dcos.thisdcos.directory.").is_empty());
        // Mesos-DNS' names under dcos-net's domain.
        let mirror = &zones[MESOS_MIRROR];
        assert!(mirror.a.contains_key("leader.mesos.thisdcos.directory."));
        assert!(mirror
            .a
            .contains_key("web-group.marathon.mesos.thisdcos.directory."));
        assert!(mirror
            .srv
            .contains_key("_web-group._tcp.marathon.mesos.thisdcos.directory."));
        assert!(cluster_records(&Value::Null, &[]).is_empty());
    }
}
