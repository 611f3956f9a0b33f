//! The contract equals the DC/OS 1.11 "Ports" page, row for row, and holds the facts the
//! rest of the system relies on. The page is kept beside this test as data, so the test
//! runs on a clone with nothing else around it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use dcos_ports::{
    bind_addrs, component_ports, rows_of_unit, task_ranges, units_for, BindScope, NodeRole,
    PortRowJson, PortSpec, Protocol, RangeSet, Section, CONTRACT,
};

const PAGE: &str = include_str!("data/dcos-1.11-ports.md");

#[derive(Debug, PartialEq)]
struct PageRow {
    port: PortSpec,
    protocol: Protocol,
    section: Section,
    component: String,
    units: Vec<String>,
    source: String,
    destination: String,
    enterprise: bool,
}

fn parse_page(page: &str) -> Vec<PageRow> {
    let mut section = None;
    let mut protocol = None;
    let mut rows = Vec::new();
    for line in page.lines().map(str::trim) {
        if let Some(h) = line.strip_prefix("## ") {
            section = Some(match h {
                "All nodes" => Section::All,
                "Master" => Section::Master,
                "Agent" => Section::Agent,
                other => panic!("unknown section {other}"),
            });
        } else if let Some(h) = line.strip_prefix("### ") {
            protocol = Some(match h {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                other => panic!("unknown protocol {other}"),
            });
        } else if line.starts_with('|') && !line.starts_with("|---") && !line.starts_with("| Port")
        {
            let cols: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cols.len(), 5, "{line}");
            let port = match cols[0] {
                "Ephemeral" => PortSpec::Ephemeral,
                p => match p.split_once('-') {
                    Some((b, e)) => PortSpec::Range(b.parse().unwrap(), e.parse().unwrap()),
                    None => PortSpec::Single(p.parse().unwrap()),
                },
            };
            let enterprise = cols[2].contains("[enterprise");
            let unit_text = cols[2].split('[').next().unwrap().replace('`', "");
            let units = unit_text
                .trim()
                .split('/')
                .map(|u| u.trim().to_string())
                .collect();
            rows.push(PageRow {
                port,
                protocol: protocol.unwrap(),
                section: section.unwrap(),
                component: cols[1].to_string(),
                units,
                source: cols[3].to_string(),
                destination: cols[4].to_string(),
                enterprise,
            });
        }
    }
    rows
}

#[test]
fn the_table_equals_the_page_row_for_row() {
    let page = parse_page(PAGE);
    let ours: Vec<PageRow> = CONTRACT
        .iter()
        .filter(|r| r.in_spec)
        .map(|r| PageRow {
            port: r.port,
            protocol: r.protocol,
            section: r.section,
            component: r.component.to_string(),
            units: r.units.iter().map(|u| u.to_string()).collect(),
            source: r.source.to_string(),
            destination: r.destination.to_string(),
            enterprise: r.enterprise,
        })
        .collect();
    assert_eq!(page.len(), 40);
    assert_eq!(ours, page);
}

#[test]
fn the_added_rows_are_zookeeper_quorum_diagnostics_statsd_and_the_image_registry() {
    let added: Vec<_> = CONTRACT.iter().filter(|r| !r.in_spec).collect();
    assert_eq!(added.len(), 7);
    assert_eq!(added[0].port, PortSpec::Single(2888));
    assert_eq!(added[0].units, &["dcos-exhibitor.service"]);
    // dcos-diagnostics: TCP 1050 on masters, a socket (no port) on agents.
    assert_eq!(added[1].port, PortSpec::Single(1050));
    assert_eq!(added[1].units, &["dcos-diagnostics.service"]);
    assert_eq!(added[2].port, PortSpec::Ephemeral);
    assert_eq!(added[2].section, Section::Agent);
    // dcos-log: a socket on every node.
    assert_eq!(added[3].units, &["dcos-log-master.service"]);
    assert_eq!(added[4].units, &["dcos-log-agent.service"]);
    assert_eq!(added[5].port, PortSpec::Single(8124));
    assert_eq!(added[5].units, &["dcos-metrics-agent.service"]);
    assert_eq!(added[6].port, PortSpec::Single(5000));
    assert_eq!(added[6].units, &["dcos-registry.service"]);
}

fn ports(role: NodeRole, protocol: Protocol) -> Vec<u16> {
    component_ports(role, protocol).ports().collect()
}

#[test]
fn each_role_holds_the_pages_ports() {
    assert_eq!(
        ports(NodeRole::Master, Protocol::Tcp),
        vec![
            53, 80, 443, 1050, 1337, 2181, 2888, 3888, 5000, 5050, 7070, 8080, 8101, 8123, 8181,
            8200, 8443, 8888, 9090, 9443, 9990, 15055, 15101, 15201, 61003, 61053, 61091, 61420,
            61430, 62080, 62501
        ]
    );
    assert_eq!(ports(NodeRole::Master, Protocol::Udp), vec![53, 61053]);
    assert_eq!(
        ports(NodeRole::Agent, Protocol::Tcp),
        vec![53, 5051, 61001, 61002, 61003, 61091, 61420, 62080, 62501]
    );
    // The agents' local StatsD collector (an added row).
    assert_eq!(ports(NodeRole::AgentPublic, Protocol::Udp), vec![53, 8124]);
}

#[test]
fn the_six_task_ranges_and_co_location() {
    assert_eq!(
        task_ranges(NodeRole::Agent).to_string(),
        "[1025-2180, 2182-3887, 3889-5049, 5052-8079, 8082-8180, 8182-32000]"
    );
    assert!(task_ranges(NodeRole::Master).is_empty());
    let colocated = task_ranges(NodeRole::MasterAgent);
    for p in [
        1050, 1337, 2888, 5000, 7070, 8101, 8123, 8200, 8443, 8888, 9090, 9443, 9990, 15055, 15101,
        15201,
    ] {
        assert!(!colocated.contains(p), "{p} is a master component port");
    }
    assert!(colocated.contains(1025) && colocated.contains(32000));
    let expected: RangeSet = "[1025-1049, 1051-1336, 1338-2180, 2182-2887, 2889-3887, 3889-4999, 5001-5049, 5052-7069, 7071-8079, 8082-8100, 8102-8122, 8124-8180, 8182-8199, 8201-8442, 8444-8887, 8889-9089, 9091-9442, 9444-9989, 9991-15054, 15056-15100, 15102-15200, 15202-32000]".parse().unwrap();
    assert_eq!(colocated, expected);
}

#[test]
fn bind_scopes_follow_source_and_destination() {
    use BindScope::{Any, Cluster, Localhost};
    use Protocol::{Tcp, Udp};
    // Every fixed-port row, TCP and UDP: localhost rows on loopback, public IP rows everywhere,
    // the rest on the node's cluster IP.
    let expected = [
        (53, Tcp, Cluster),
        (61003, Tcp, Cluster),
        (61091, Tcp, Cluster),
        (61420, Tcp, Cluster),
        (62080, Tcp, Cluster),
        (62501, Tcp, Cluster),
        (53, Udp, Cluster),
        (80, Tcp, Any),
        (443, Tcp, Any),
        (1337, Tcp, Localhost),
        (2181, Tcp, Cluster),
        (3888, Tcp, Cluster),
        (5050, Tcp, Cluster),
        (7070, Tcp, Localhost),
        (8080, Tcp, Cluster),
        (8101, Tcp, Localhost),
        (8123, Tcp, Localhost),
        (8181, Tcp, Cluster),
        (8200, Tcp, Localhost),
        (8443, Tcp, Cluster),
        (8888, Tcp, Localhost),
        (9090, Tcp, Cluster),
        (9443, Tcp, Cluster),
        (9990, Tcp, Localhost),
        (15055, Tcp, Localhost),
        (15101, Tcp, Cluster),
        (15201, Tcp, Cluster),
        (61053, Tcp, Cluster),
        (61430, Tcp, Cluster),
        (61053, Udp, Cluster),
        (5051, Tcp, Cluster),
        (61001, Tcp, Cluster),
        (61002, Tcp, Cluster),
        (2888, Tcp, Cluster),
        (1050, Tcp, Cluster),
        (8124, Udp, Localhost),
        (5000, Tcp, Cluster),
    ];
    let ours: Vec<(u16, Protocol, BindScope)> = CONTRACT
        .iter()
        .filter_map(|r| match r.port {
            PortSpec::Single(p) => Some((p, r.protocol, r.bind())),
            _ => None,
        })
        .collect();
    assert_eq!(ours, expected);
    // The UDP rows: DNS on every node (53), Mesos-DNS on masters (61053), and the added
    // StatsD collector on agents (8124).
    let udp: Vec<_> = CONTRACT.iter().filter(|r| r.protocol == Udp).collect();
    assert_eq!(udp.len(), 3);
    // The tasks bind the agent's IP; the ephemeral Pkgpanda API is local.
    for r in CONTRACT
        .iter()
        .filter(|r| !matches!(r.port, PortSpec::Single(_)))
    {
        let scope = if r.is_task_range() {
            Cluster
        } else {
            Localhost
        };
        assert_eq!(r.bind(), scope, "{}", r.component);
    }
    // Only the node's resolver (53, both protocols) binds loopback too.
    let resolver: Vec<_> = CONTRACT
        .iter()
        .filter(|r| r.loopback_too)
        .map(|r| (r.port, r.protocol, r.units))
        .collect();
    assert_eq!(
        resolver,
        vec![
            (PortSpec::Single(53), Tcp, &["dcos-net.service"][..]),
            (PortSpec::Single(53), Udp, &["dcos-net.service"][..]),
        ]
    );
}

#[test]
fn every_unit_binds_each_of_its_rows_where_the_scope_says() {
    let ip: IpAddr = "10.0.0.5".parse().unwrap();
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    for role in [
        NodeRole::Master,
        NodeRole::Agent,
        NodeRole::AgentPublic,
        NodeRole::MasterAgent,
    ] {
        for unit in units_for(role) {
            let binds = bind_addrs(unit, role, ip).unwrap_or_else(|e| panic!("{role}: {e}"));
            let mut rows = 0;
            for row in rows_of_unit(role, unit) {
                let PortSpec::Single(port) = row.port else {
                    continue;
                };
                rows += 1;
                let own = match row.bind() {
                    BindScope::Localhost => lo,
                    BindScope::Cluster => ip,
                    BindScope::Any => any,
                };
                let mut want = vec![SocketAddr::new(own, port)];
                if row.loopback_too {
                    want.push(SocketAddr::new(lo, port));
                }
                assert_eq!(
                    binds.addrs(row.protocol, port),
                    Ok(want),
                    "{role} {unit} {port}"
                );
            }
            let extra = rows_of_unit(role, unit).filter(|r| r.loopback_too).count();
            assert_eq!(binds.iter().count(), rows + extra, "{role} {unit}");
        }
    }
}

#[test]
fn units_per_role() {
    assert_eq!(
        units_for(NodeRole::Agent),
        vec![
            "dcos-net.service",
            "dcos-rexray.service",
            "dcos-metrics-agent.service",
            "dcos-mesos-slave.service",
            "dcos-adminrouter-agent",
            "dcos-diagnostics.service",
            "dcos-log-agent.service",
        ]
    );
    let master = units_for(NodeRole::Master);
    assert!(master.contains(&"dcos-diagnostics.service"));
    assert!(master.contains(&"dcos-pkgpanda-api.service"));
    assert!(master.contains(&"dcos-metrics-master.service"));
    assert!(!master.contains(&"dcos-mesos-slave.service"));
    assert!(!master.contains(&"Any Mesos task"));
}

#[test]
fn json_rows_have_exactly_the_documented_keys() {
    let rows: Vec<PortRowJson> = CONTRACT.iter().map(PortRowJson::from).collect();
    let value = serde_json::to_value(&rows).unwrap();
    let first = value[0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "bind",
            "component",
            "destination",
            "enterprise",
            "in_spec",
            "port",
            "protocol",
            "range",
            "roles",
            "source",
            "units"
        ]
    );
    let pkgpanda = value
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["component"].as_str().unwrap().contains("Pkgpanda"))
        .unwrap();
    assert!(pkgpanda["port"].is_null() && pkgpanda["range"].is_null());
    let range = value
        .as_array()
        .unwrap()
        .iter()
        .find(|r| !r["range"].is_null())
        .unwrap();
    assert_eq!(range["range"], serde_json::json!([1025, 2180]));
    assert_eq!(range["roles"], serde_json::json!(["agent"]));
}
