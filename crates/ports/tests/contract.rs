//! The contract equals the DC/OS 1.11 "Ports" page, row for row, and holds the facts the
//! rest of the system relies on. The page is kept beside this test as data, so the test
//! runs on a clone with nothing else around it.

use dcos_ports::{
    component_ports, task_ranges, units_for, BindScope, NodeRole, PortRowJson, PortSpec, Protocol,
    RangeSet, Section, CONTRACT,
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
fn the_added_rows_are_zookeeper_quorum_and_the_image_registry() {
    let added: Vec<_> = CONTRACT.iter().filter(|r| !r.in_spec).collect();
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].port, PortSpec::Single(2888));
    assert_eq!(added[0].units, &["dcos-exhibitor.service"]);
    assert_eq!(added[1].port, PortSpec::Single(5000));
    assert_eq!(added[1].units, &["dcos-registry.service"]);
}

fn ports(role: NodeRole, protocol: Protocol) -> Vec<u16> {
    component_ports(role, protocol).ports().collect()
}

#[test]
fn each_role_holds_the_pages_ports() {
    assert_eq!(
        ports(NodeRole::Master, Protocol::Tcp),
        vec![
            53, 80, 443, 1337, 2181, 2888, 3888, 5000, 5050, 7070, 8080, 8101, 8123, 8181, 8200,
            8443, 8888, 9090, 9443, 9990, 15055, 15101, 15201, 61003, 61053, 61091, 61420, 61430,
            62080, 62501
        ]
    );
    assert_eq!(ports(NodeRole::Master, Protocol::Udp), vec![53, 61053]);
    assert_eq!(
        ports(NodeRole::Agent, Protocol::Tcp),
        vec![53, 5051, 61001, 61002, 61003, 61091, 61420, 62080, 62501]
    );
    assert_eq!(ports(NodeRole::AgentPublic, Protocol::Udp), vec![53]);
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
        1337, 2888, 5000, 7070, 8101, 8123, 8200, 8443, 8888, 9090, 9443, 9990, 15055, 15101, 15201,
    ] {
        assert!(!colocated.contains(p), "{p} is a master component port");
    }
    assert!(colocated.contains(1025) && colocated.contains(32000));
    let expected: RangeSet = "[1025-1336, 1338-2180, 2182-2887, 2889-3887, 3889-4999, 5001-5049, 5052-7069, 7071-8079, 8082-8100, 8102-8122, 8124-8180, 8182-8199, 8201-8442, 8444-8887, 8889-9089, 9091-9442, 9444-9989, 9991-15054, 15056-15100, 15102-15200, 15202-32000]".parse().unwrap();
    assert_eq!(colocated, expected);
}

#[test]
fn bind_scopes_follow_source_and_destination() {
    let scope = |port: u16, proto: Protocol| {
        CONTRACT
            .iter()
            .find(|r| r.port == PortSpec::Single(port) && r.protocol == proto)
            .unwrap()
            .bind()
    };
    for p in [1337, 7070, 8101, 8123, 8200, 8888, 9990, 15055] {
        assert_eq!(scope(p, Protocol::Tcp), BindScope::Localhost, "{p}");
    }
    for p in [80, 443] {
        assert_eq!(scope(p, Protocol::Tcp), BindScope::Any);
    }
    for p in [53, 2181, 5050, 5051, 8080, 15101, 61001, 61053] {
        assert_eq!(scope(p, Protocol::Tcp), BindScope::Cluster, "{p}");
    }
    assert_eq!(scope(61053, Protocol::Udp), BindScope::Cluster);
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
        ]
    );
    let master = units_for(NodeRole::Master);
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
