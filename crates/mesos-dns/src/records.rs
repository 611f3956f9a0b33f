//! Mesos-DNS' record generator: the A and SRV records of a master's `/master/state`, named
//! as Mesos-DNS names them (its `docs/naming.md` and record-generator tests are the rules).
//!
//! - the leader: `leader.<d>`, `master.<d>`, `master<N>.<d>`, SRV `_leader._tcp|_udp.<d>`;
//! - agents: `slave.<d>`, SRV `_slave._tcp.<d>`; frameworks: `<fw>.<d>`, SRV
//!   `_framework._tcp.<fw>.<d>`;
//! - each TASK_RUNNING task: `<task>.<fw>.<d>`, the canonical `<task>-<hash>-<agent>.<fw>.<d>`
//!   and their `.slave.` twins (the agent's IP); SRV `_<task>._tcp|_udp.<fw>[.slave].<d>` for
//!   its host ports, and `_<task>._<proto>.<fw>.<d>` plus `_<port>._<task>._<proto>.<fw>.<d>`
//!   for its discovery ports.

use std::net::Ipv4Addr;

use serde_json::Value;

use crate::zone::Records;

/// Where a task's address comes from, tried in order (Mesos-DNS' `IPSources`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpSource {
    /// The agent's address.
    Host,
    /// The container's addresses from the latest TASK_RUNNING status.
    Netinfo,
    /// The Mesos containerizer's label in that status.
    Mesos,
    /// Docker's label in that status.
    Docker,
}

/// DC/OS' `mesos_dns_ip_sources`: names resolve to the agent.
pub const DCOS_IP_SOURCES: [IpSource; 2] = [IpSource::Host, IpSource::Netinfo];

/// What the generator needs besides the state.
#[derive(Clone, Debug)]
pub struct Naming {
    /// The domain without a trailing dot (`mesos`).
    pub domain: String,
    /// The configured masters (`ip:port`), for `master<N>`.
    pub masters: Vec<String>,
    /// The address of this Mesos-DNS (`ns1.<domain>`).
    pub listener: Ipv4Addr,
    /// Task address sources, in order.
    pub ip_sources: Vec<IpSource>,
    /// RFC 952 labels (24 characters, no leading digits) instead of RFC 1123 (63).
    pub rfc952: bool,
    /// The SOA's primary name server (`ns1.mesos.`).
    pub mname: String,
}

/// Turns text into one DNS label as Mesos-DNS does: lower case; `.`, `_` and `-` become `-`;
/// any other character that is not a letter or digit is dropped; no leading or trailing
/// `-`; at most 63 characters (24 and no leading digit with `rfc952`).
pub fn label(text: &str, rfc952: bool) -> String {
    let (max, left): (usize, &[char]) = if rfc952 {
        (24, &['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
    } else {
        (63, &['-'])
    };
    let mapped: String = text
        .chars()
        .filter_map(|c| match c {
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'a'..='z' | '0'..='9' => Some(c),
            '-' | '.' | '_' => Some('-'),
            _ => None,
        })
        .collect();
    let trimmed = mapped.trim_start_matches(left);
    let size = trimmed.len().min(max);
    let head = trimmed[..size].trim_end_matches('-');
    if head.len() == size {
        return head.to_string();
    }
    // The cut left dashes at the end: refill from what follows the cut.
    let rest = trimmed[size..].trim_start_matches('-');
    let room = size - head.len();
    format!("{head}{}", &rest[..rest.len().min(room)])
}

/// A dotted name with each part made a label, empty parts dropped (framework names).
pub fn domain_frag(text: &str, rfc952: bool) -> String {
    text.split('.')
        .map(|part| label(part, rfc952))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// The first five characters of the z-base-32 encoding of SHA-1(`text`).
pub fn hash5(text: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let digest = sha1_smol::Sha1::from(text).digest().bytes();
    // 25 bits, most significant first.
    let bits = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) >> 7;
    (0..5)
        .map(|i| ALPHABET[((bits >> (20 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// The host and port of a libprocess pid (`master@10.0.0.1:5050`).
pub fn pid_addr(pid: &str) -> Option<(Ipv4Addr, u16)> {
    let (_, addr) = pid.split_once('@')?;
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.parse().ok()?, port.parse().ok()?))
}

/// A task's host ports, from its `resources.ports` in `/master/state`.
pub fn host_ports(task: &Value) -> Vec<u16> {
    // `/master/state` gives ports as "[31000-31001, 31005-31005]".
    let text = task
        .pointer("/resources/ports")
        .and_then(Value::as_str)
        .unwrap_or("");
    text.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter_map(|r| {
            let (b, e) = r.trim().split_once('-')?;
            Some((b.trim().parse::<u16>().ok()?, e.trim().parse::<u16>().ok()?))
        })
        .flat_map(|(b, e)| b..=e)
        .collect()
}

/// The task's addresses from the first source that has any.
pub fn task_ips(task: &Value, agent_ip: Ipv4Addr, sources: &[IpSource]) -> Vec<Ipv4Addr> {
    let running = task
        .get("statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s["state"] == "TASK_RUNNING")
        .max_by(|a, b| {
            let t = |s: &Value| s["timestamp"].as_f64().unwrap_or(0.0);
            t(a).total_cmp(&t(b))
        });
    for source in sources {
        let ips: Vec<Ipv4Addr> = match source {
            IpSource::Host => vec![agent_ip],
            IpSource::Netinfo => running
                .and_then(|s| s.pointer("/container_status/network_infos"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|n| {
                    let listed: Vec<&Value> = n
                        .get("ip_addresses")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|i| i.get("ip_address")).collect())
                        .unwrap_or_default();
                    if listed.is_empty() {
                        n.get("ip_address").into_iter().collect()
                    } else {
                        listed
                    }
                })
                .filter_map(|ip| ip.as_str()?.parse().ok())
                .collect(),
            IpSource::Mesos | IpSource::Docker => {
                let key = if *source == IpSource::Mesos {
                    "MesosContainerizer.NetworkSettings.IPAddress"
                } else {
                    "Docker.NetworkSettings.IPAddress"
                };
                running
                    .and_then(|s| s.pointer("/labels"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|l| l["key"] == key)
                    .filter_map(|l| l["value"].as_str()?.parse().ok())
                    .collect()
            }
        };
        if !ips.is_empty() {
            return ips;
        }
    }
    Vec::new()
}

/// The records of a master's `/master/state`.
pub fn generate(state: &Value, naming: &Naming) -> Records {
    let mut r = Records::default();
    let d = format!("{}.", naming.domain);
    let rfc952 = naming.rfc952;

    // Frameworks.
    for fw in state["frameworks"].as_array().into_iter().flatten() {
        let fname = domain_frag(fw["name"].as_str().unwrap_or(""), rfc952);
        if fname.is_empty() {
            continue;
        }
        if let Some((ip, port)) = fw["pid"].as_str().and_then(pid_addr) {
            r.insert_a(&format!("{fname}.{d}"), ip);
            r.insert_srv(
                &format!("_framework._tcp.{fname}.{d}"),
                &format!("{fname}.{d}"),
                port,
            );
        } else if let Some(ip) = fw["hostname"].as_str().and_then(|h| h.parse().ok()) {
            r.insert_a(&format!("{fname}.{d}"), ip);
        }
    }

    // Agents.
    let mut agents = std::collections::HashMap::new();
    for agent in state["slaves"].as_array().into_iter().flatten() {
        let Some((ip, port)) = agent["pid"].as_str().and_then(pid_addr) else {
            continue;
        };
        if let Some(id) = agent["id"].as_str() {
            agents.insert(id.to_string(), ip);
        }
        r.insert_a(&format!("slave.{d}"), ip);
        r.insert_srv(&format!("_slave._tcp.{d}"), &format!("slave.{d}"), port);
    }

    // This server.
    r.insert_a(&naming.mname, naming.listener);

    // The leader and the masters.
    if let Some((ip, port)) = state["leader"].as_str().and_then(pid_addr) {
        r.insert_a(&format!("leader.{d}"), ip);
        r.insert_a(&format!("master.{d}"), ip);
        for proto in ["tcp", "udp"] {
            r.insert_srv(
                &format!("_leader._{proto}.{d}"),
                &format!("leader.{d}"),
                port,
            );
        }
        let mut listed: Vec<Ipv4Addr> = Vec::new();
        let mut leader_listed = false;
        for m in &naming.masters {
            let Some(mip) = m
                .rsplit_once(':')
                .and_then(|(h, _)| h.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if listed.contains(&mip) {
                continue;
            }
            leader_listed |= mip == ip;
            r.insert_a(&format!("master.{d}"), mip);
            r.insert_a(&format!("master{}.{d}", listed.len()), mip);
            listed.push(mip);
        }
        if !leader_listed {
            r.insert_a(&format!("master{}.{d}", listed.len()), ip);
        }
    }

    // Tasks.
    for fw in state["frameworks"].as_array().into_iter().flatten() {
        let fname = domain_frag(fw["name"].as_str().unwrap_or(""), rfc952);
        for task in fw["tasks"].as_array().into_iter().flatten() {
            if task["state"] != "TASK_RUNNING" {
                continue;
            }
            let Some(agent_id) = task["slave_id"].as_str() else {
                continue;
            };
            let Some(&agent_ip) = agents.get(agent_id) else {
                continue;
            };
            let tail = agent_id
                .rsplit('-')
                .next()
                .unwrap_or(agent_id)
                .to_ascii_lowercase();
            let hash = hash5(task["id"].as_str().unwrap_or(""));
            let discovery = task
                .pointer("/discovery/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            let ips = task_ips(task, agent_ip, &naming.ip_sources);
            let host_ports = host_ports(task);
            let mut passes: Vec<String> = Vec::new();
            match discovery {
                // Mesos-DNS names a task with discovery info twice: by the raw name (legacy
                // dotted names such as `myapp.mygroup.marathon.mesos`) and by its label.
                Some(name) => {
                    passes.push(name.to_ascii_lowercase());
                    passes.push(label(name, rfc952));
                }
                None => passes.push(label(task["name"].as_str().unwrap_or(""), rfc952)),
            }
            passes.dedup();
            for name in passes.into_iter().filter(|n| !n.is_empty()) {
                let canonical = format!("{name}-{hash}-{tail}.{fname}");
                let arec = format!("{name}.{fname}");
                for ip in &ips {
                    r.insert_a(&format!("{arec}.{d}"), *ip);
                    r.insert_a(&format!("{canonical}.{d}"), *ip);
                }
                r.insert_a(&format!("{arec}.slave.{d}"), agent_ip);
                r.insert_a(&format!("{canonical}.slave.{d}"), agent_ip);
                let slave_target = format!("{canonical}.slave.{d}");
                for port in &host_ports {
                    for proto in ["tcp", "udp"] {
                        r.insert_srv(
                            &format!("_{name}._{proto}.{fname}.slave.{d}"),
                            &slave_target,
                            *port,
                        );
                        if discovery.is_none() {
                            r.insert_srv(
                                &format!("_{name}._{proto}.{fname}.{d}"),
                                &slave_target,
                                *port,
                            );
                        }
                    }
                }
                if discovery.is_none() {
                    continue;
                }
                let target = format!("{canonical}.{d}");
                for port in task
                    .pointer("/discovery/ports/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some(number) = port["number"].as_u64().and_then(|n| u16::try_from(n).ok())
                    else {
                        continue;
                    };
                    let proto = label(port["protocol"].as_str().unwrap_or(""), rfc952);
                    let protos = if proto.is_empty() {
                        vec!["tcp".to_string(), "udp".to_string()]
                    } else {
                        vec![proto]
                    };
                    let pname = label(port["name"].as_str().unwrap_or(""), rfc952);
                    for proto in protos {
                        r.insert_srv(&format!("_{name}._{proto}.{fname}.{d}"), &target, number);
                        if !pname.is_empty() {
                            r.insert_srv(
                                &format!("_{pname}._{name}._{proto}.{fname}.{d}"),
                                &target,
                                number,
                            );
                        }
                    }
                }
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_follow_mesos_dns() {
        for (input, rfc1123, rfc952) in [
            ("", "", ""),
            ("-", "", ""),
            ("a---", "a", "a"),
            ("---a---b", "a---b", "a---b"),
            ("a.b.c.d.e", "a-b-c-d-e", "a-b-c-d-e"),
            ("a.c.d_de.", "a-c-d-de", "a-c-d-de"),
            (
                "r29f.dev.angrypigs",
                "r29f-dev-angrypigs",
                "r29f-dev-angrypigs",
            ),
            ("4abc123", "4abc123", "abc123"),
            ("-4abc123", "4abc123", "abc123"),
            (
                "fd%gsf---gs7-f$gs--d7fddg-123",
                "fdgsf---gs7-fgs--d7fddg-123",
                "fdgsf---gs7-fgs--d7fddg1",
            ),
            (
                "chronos with a space AND MIXED CASE-2.0.1",
                "chronoswithaspaceandmixedcase-2-0-1",
                "chronoswithaspaceandmixe",
            ),
        ] {
            assert_eq!(label(input, false), rfc1123, "rfc1123 {input:?}");
            assert_eq!(label(input, true), rfc952, "rfc952 {input:?}");
        }
        let long = format!("hello{}f", "-".repeat(58));
        assert_eq!(label(&long, false), "hellof");
        let fits = format!("hello{}f", "-".repeat(56));
        assert_eq!(label(&fits, false), fits);
        assert_eq!(
            label(
                "fd%gsf---gs7-f$gs--d7fddg123456789012345678901234567890123456789-123",
                false
            ),
            "fdgsf---gs7-fgs--d7fddg1234567890123456789012345678901234567891"
        );
    }

    #[test]
    fn domain_fragments_keep_dots() {
        assert_eq!(
            domain_frag("pod_123$abc.marathon-0.6.0-dev.mesos", false),
            "pod-123abc.marathon-0.6.0-dev.mesos"
        );
        assert_eq!(
            domain_frag("pod_123$abc.marathon-0.6.0-dev.mesos", true),
            "pod-123abc.marathon-0.dev.mesos"
        );
        assert_eq!(domain_frag("a..c", false), "a.c");
        assert_eq!(domain_frag("(@ host . com", false), "host.com");
        assert_eq!(domain_frag("MiXeDcase.CoM", false), "mixedcase.com");
    }

    #[test]
    fn task_hashes_match_mesos_dns() {
        assert_eq!(hash5("test"), "iffe9");
        assert_eq!(
            hash5("liquor-store.b8db9f73-562f-11e4-a088-c20493233aa5"),
            "4dfjd"
        );
        assert_eq!(
            hash5("liquor-store.b71166c1-562f-11e4-a088-c20493233aa5"),
            "zasmd"
        );
        assert_eq!(
            hash5("car-store.43758382-562f-11e4-a088-c20493233aa5"),
            "zinaz"
        );
    }

    fn naming() -> Naming {
        Naming {
            domain: "mesos".into(),
            masters: vec!["10.0.0.8:5050".into()],
            listener: "10.0.0.8".parse().unwrap(),
            ip_sources: DCOS_IP_SOURCES.to_vec(),
            rfc952: false,
            mname: "ns1.mesos.".into(),
        }
    }

    fn a(r: &Records, name: &str) -> Vec<String> {
        r.a.get(name)
            .map(|s| s.iter().map(|i| i.to_string()).collect())
            .unwrap_or_default()
    }

    fn srv(r: &Records, name: &str) -> Vec<String> {
        r.srv
            .get(name)
            .map(|s| s.iter().map(|t| format!("{}:{}", t.host, t.port)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_marathon_task_gets_its_names_and_host_ports() {
        let state = json!({
            "leader": "master@10.0.0.6:5050",
            "slaves": [{"id": "abc-S1", "pid": "slave(1)@10.0.0.11:5051", "hostname": "10.0.0.11"}],
            "frameworks": [{"name": "marathon", "pid": "scheduler-1@10.0.0.6:15101", "tasks": [
                {"id": "car-store.43758382-562f-11e4-a088-c20493233aa5", "name": "car.store", "state": "TASK_RUNNING",
                 "slave_id": "abc-S1", "resources": {"ports": "[31364-31365]"}},
                {"id": "gone.1", "name": "gone", "state": "TASK_KILLED", "slave_id": "abc-S1"}
            ]}]
        });
        let r = generate(&state, &naming());
        assert_eq!(a(&r, "leader.mesos."), ["10.0.0.6"]);
        assert_eq!(a(&r, "master.mesos."), ["10.0.0.6", "10.0.0.8"]);
        assert_eq!(a(&r, "master0.mesos."), ["10.0.0.8"]);
        assert_eq!(a(&r, "master1.mesos."), ["10.0.0.6"]);
        assert_eq!(srv(&r, "_leader._tcp.mesos."), ["leader.mesos.:5050"]);
        assert_eq!(a(&r, "slave.mesos."), ["10.0.0.11"]);
        assert_eq!(srv(&r, "_slave._tcp.mesos."), ["slave.mesos.:5051"]);
        assert_eq!(a(&r, "marathon.mesos."), ["10.0.0.6"]);
        assert_eq!(a(&r, "ns1.mesos."), ["10.0.0.8"]);
        assert_eq!(a(&r, "car-store.marathon.mesos."), ["10.0.0.11"]);
        assert_eq!(a(&r, "car-store-zinaz-s1.marathon.mesos."), ["10.0.0.11"]);
        assert_eq!(a(&r, "car-store.marathon.slave.mesos."), ["10.0.0.11"]);
        let want = [
            "car-store-zinaz-s1.marathon.slave.mesos.:31364",
            "car-store-zinaz-s1.marathon.slave.mesos.:31365",
        ];
        for name in [
            "_car-store._tcp.marathon.mesos.",
            "_car-store._udp.marathon.mesos.",
            "_car-store._tcp.marathon.slave.mesos.",
        ] {
            assert_eq!(srv(&r, name), want, "{name}");
        }
        assert!(a(&r, "gone.marathon.mesos.").is_empty());
    }

    #[test]
    fn discovery_info_names_and_ports() {
        let state = json!({
            "leader": "master@10.0.0.6:5050",
            "slaves": [{"id": "x-0", "pid": "slave(1)@1.2.3.11:5051"}],
            "frameworks": [{"name": "marathon", "tasks": [
                {"id": "liquor-store.b8db9f73-562f-11e4-a088-c20493233aa5", "name": "liquor.store", "state": "TASK_RUNNING",
                 "slave_id": "x-0", "resources": {"ports": "[31354-31354, 31355-31355]"},
                 "statuses": [{"state": "TASK_RUNNING", "timestamp": 1.0, "container_status": {"network_infos": [{"ip_addresses": [{"ip_address": "10.3.0.1"}]}]}}],
                 "discovery": {"name": "liquor.store", "ports": {"ports": [
                     {"number": 80, "name": "http", "protocol": "tcp"},
                     {"number": 443, "name": "https", "protocol": "tcp"}]}}}
            ]}]
        });
        let mut n = naming();
        n.ip_sources = vec![IpSource::Netinfo, IpSource::Host];
        let r = generate(&state, &n);
        assert_eq!(a(&r, "liquor-store.marathon.mesos."), ["10.3.0.1"]);
        assert_eq!(a(&r, "liquor-store-4dfjd-0.marathon.mesos."), ["10.3.0.1"]);
        assert_eq!(a(&r, "liquor-store.marathon.slave.mesos."), ["1.2.3.11"]);
        assert_eq!(a(&r, "liquor.store.marathon.mesos."), ["10.3.0.1"]);
        assert_eq!(
            srv(&r, "_liquor-store._tcp.marathon.mesos."),
            [
                "liquor-store-4dfjd-0.marathon.mesos.:80",
                "liquor-store-4dfjd-0.marathon.mesos.:443"
            ]
        );
        assert_eq!(
            srv(&r, "_http._liquor-store._tcp.marathon.mesos."),
            ["liquor-store-4dfjd-0.marathon.mesos.:80"]
        );
        assert!(srv(&r, "_liquor-store._udp.marathon.mesos.").is_empty());
        assert_eq!(
            srv(&r, "_liquor-store._tcp.marathon.slave.mesos."),
            [
                "liquor-store-4dfjd-0.marathon.slave.mesos.:31354",
                "liquor-store-4dfjd-0.marathon.slave.mesos.:31355"
            ]
        );
    }
}
