//! Whole clusters: every node in its own network namespace, started by `dcos-testkit` with
//! the code behind `dcos cluster up`. The checks iterate over the contract's units of each
//! role, so they hold for whatever units are built.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::time::{Duration, Instant};

use dcos_node::cluster::{pid_alive, Record};
use dcos_node::status::{NodeStatus, UnitState, UnitStatus};
use dcos_node::units::role_units;
use dcos_ports::{BindScope, NodeRole, PortSpec, Protocol};
use dcos_testkit::netns::netns_list;
use dcos_testkit::{eventually, output_within, Cluster, Node};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::DCOS;

const HISTORY: &str = "dcos-history-service.service";
const HISTORY_PORT: u16 = 15055;
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn start(agents: usize) -> Cluster {
    Cluster::builder()
        .masters(1)
        .agents(agents)
        .public_agents(0)
        .binary(DCOS)
        .start()
        .expect("start the cluster")
}

fn role_of(node: &Node) -> NodeRole {
    NodeRole::parse(&node.role).expect("a recorded role")
}

fn unit<'a>(status: &'a NodeStatus, name: &str) -> &'a UnitStatus {
    status
        .units
        .iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no unit {name} in {status:#?}"))
}

/// The network namespace a process lives in, as an nsfs inode.
fn netns_inode(path: &str) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .ino()
}

fn ping_history(cluster: &Cluster, master: &Node) -> Option<String> {
    cluster
        .http_get(master, SocketAddr::new(LOCALHOST, HISTORY_PORT), "/ping")
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

#[test]
fn every_built_unit_runs_in_its_node_and_binds_as_the_contract_says() {
    let cluster = start(2);
    let master = cluster.master(0);
    assert_eq!(cluster.agents().len(), 2);

    // Every unit of the role is reported; every built one runs, in its node's namespace.
    for node in cluster.nodes() {
        let role = role_of(node);
        let status = cluster.status(node);
        assert_eq!(status.role, node.role);
        assert_eq!(status.ip, node.ip);
        assert_eq!(Some(status.supervisor_pid), node.pid);
        let contract: Vec<_> = role_units(role).iter().map(|u| u.name).collect();
        let reported: Vec<_> = status.units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(reported, contract, "{}", node.id);
        let ns = netns_inode(&format!("/run/netns/{}", node.netns.as_deref().unwrap()));
        for u in role_units(role) {
            let st = unit(&status, u.name);
            if st.state == UnitState::NotInUse {
                // Exhibitor only runs with the ZooKeeper store (the default is embedded), the
                // image registry only when asked for.
                assert!(
                    ["dcos-exhibitor.service", "dcos-registry.service"].contains(&u.name),
                    "{} {}",
                    node.id,
                    u.name
                );
                assert_eq!(st.pid, None);
            } else if u.built {
                assert_eq!(st.state, UnitState::Running, "{} {}", node.id, u.name);
                let pid = st.pid.expect("a running unit has a pid");
                assert!(pid_alive(pid), "{} {} pid {pid}", node.id, u.name);
                assert_eq!(
                    netns_inode(&format!("/proc/{pid}/ns/net")),
                    ns,
                    "{} {}",
                    node.id,
                    u.name
                );
                assert_eq!(st.restarts, 0);
            } else {
                assert_eq!(st.state, UnitState::NotBuilt, "{} {}", node.id, u.name);
                assert_eq!(st.pid, None);
            }
        }
    }

    // Bindings, for every TCP port of every built unit: `agent/master` (and public) rows
    // answer on the node's IP from another node; localhost rows answer only on the node's
    // own loopback, and are refused at its IP, from other nodes and from itself.
    let mut checked = Vec::new();
    for node in cluster.nodes() {
        let other = cluster.nodes().iter().find(|n| n.id != node.id).unwrap();
        let status = cluster.status(node);
        let in_use = |name: &str| unit(&status, name).state != UnitState::NotInUse;
        for u in role_units(role_of(node))
            .iter()
            .filter(|u| u.built && in_use(u.name))
        {
            for row in u.rows.iter().filter(|r| r.protocol == Protocol::Tcp) {
                let PortSpec::Single(port) = row.port else {
                    continue;
                };
                let at_ip = SocketAddr::new(node.ip, port);
                let on_lo = SocketAddr::new(LOCALHOST, port);
                let refused = |from: &Node, addr| match cluster.connect(from, addr) {
                    Ok(_) => panic!("{} {port}: {addr} answers from {}", u.name, from.id),
                    Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{addr}: {e}"),
                };
                match row.bind() {
                    BindScope::Cluster | BindScope::Any => {
                        cluster.connect(other, at_ip).unwrap_or_else(|e| {
                            panic!("{} {port}: {at_ip} from {}: {e}", u.name, other.id)
                        });
                        // dcos-net's resolver also answers on loopback, as DC/OS' does
                        // (on masters it binds every interface address).
                        let resolver = u.name == "dcos-net.service" && port == 53;
                        if row.bind() == BindScope::Cluster && !resolver {
                            refused(node, on_lo);
                        } else {
                            cluster.connect(node, on_lo).unwrap_or_else(|e| {
                                panic!("{} {port}: {on_lo} on {}: {e}", u.name, node.id)
                            });
                        }
                    }
                    BindScope::Localhost => {
                        cluster.connect(node, on_lo).unwrap_or_else(|e| {
                            panic!("{} {port}: {on_lo} on {}: {e}", u.name, node.id)
                        });
                        refused(other, at_ip);
                        refused(node, at_ip);
                    }
                }
                checked.push(format!("{} {port} {:?}", node.id, row.bind()));
            }
        }
    }
    eprintln!("binding checks: {checked:?}");

    // History (15055) is localhost-only: an agent cannot reach it at the master's IP, while
    // the master's own loopback answers its `/ping`.
    let agent = cluster.agents()[0];
    let err = cluster
        .connect(agent, SocketAddr::new(master.ip, HISTORY_PORT))
        .expect_err("15055 must not be reachable from an agent");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(ping_history(&cluster, master).as_deref(), Some("\"pong\""));

    // `dcos cluster list --json` shows the cluster and every node, healthy.
    let out = crate::dcos(&[
        "cluster",
        "list",
        "--state-dir",
        cluster.state_dir().to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster.name())
        .unwrap_or_else(|| panic!("{} not in {list:#}", cluster.name()));
    let ca = entry["ca_cert"]
        .as_str()
        .expect("the cluster CA's certificate");
    assert!(fs_err::read_to_string(ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert_eq!(
        entry["cluster_id"].as_str(),
        cluster.record().cluster_id.as_deref()
    );
    let nodes = entry["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for (shown, node) in nodes.iter().zip(cluster.nodes()) {
        assert_eq!(shown["id"], node.id.as_str());
        assert_eq!(shown["role"], node.role.as_str());
        assert_eq!(shown["ip"], node.ip.to_string());
        assert_eq!(shown["netns"], node.netns.as_deref().unwrap());
        assert_eq!(shown["healthy"], true, "{shown}");
    }

    // The master's pkgpanda API answers on its socket, and `dcos node status` reports it.
    let socket = dcos_node::pkgpanda::socket_path(&dcos_node::units::run_dir_of(&master.work_dir));
    let api = dcos_testkit::http::get_unix(&socket, "/units/").expect("pkgpanda API");
    assert_eq!(api.status, 200, "{}", api.body);
    let from_api: NodeStatus = serde_json::from_str(&api.body).unwrap();
    assert_eq!(from_api, cluster.status(master));
    let out = crate::dcos(&[
        "node",
        "status",
        "--config",
        master.config.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: NodeStatus = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, from_api);
}

#[test]
fn a_killed_unit_is_restarted_and_down_leaves_nothing_behind() {
    let cluster = start(1);
    let master = cluster.master(0);
    let before = cluster.status(master);
    let old = unit(&before, HISTORY).clone();
    let old_pid = old.pid.expect("history runs");

    kill(Pid::from_raw(old_pid as i32), Signal::SIGKILL).unwrap();
    let restarted = eventually(Duration::from_secs(20), || {
        let st = cluster.status(master);
        let u = unit(&st, HISTORY).clone();
        (u.state == UnitState::Running
            && u.restarts > old.restarts
            && u.pid.is_some_and(|p| p != old_pid && pid_alive(p)))
        .then_some(u)
    });
    assert!(
        restarted
            .last_exit
            .as_deref()
            .is_some_and(|e| e.contains("SIGKILL")),
        "{restarted:?}"
    );
    // It answers again, and no other unit of any node was touched.
    eventually(Duration::from_secs(10), || ping_history(&cluster, master));
    let after = cluster.status(master);
    for (b, a) in before
        .units
        .iter()
        .zip(&after.units)
        .filter(|(b, _)| b.name != HISTORY)
    {
        assert_eq!((b.pid, b.restarts), (a.pid, a.restarts), "{}", b.name);
    }

    let record = cluster.record().clone();
    let pids = cluster.pids();
    assert!(pids.contains(&restarted.pid.unwrap()));
    let started = Instant::now();
    cluster.down().expect("dcos cluster down");
    eprintln!("down took {:?}", started.elapsed());
    assert_nothing_left(&record, &pids);
}

#[test]
fn a_panicking_test_still_tears_its_cluster_down() {
    let mut seen = None;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let cluster = start(1);
        seen = Some((cluster.record().clone(), cluster.pids()));
        panic!("a test failing while its cluster runs");
    }));
    assert!(result.is_err());
    let (record, pids) = seen.expect("the cluster started");
    assert!(!pids.is_empty());
    assert_nothing_left(&record, &pids);
}

/// No namespace, veth or bridge of the cluster exists, and none of its processes lives.
fn assert_nothing_left(record: &Record, pids: &[u32]) {
    let prefix = format!("dcos-{}-", record.name);
    let left: Vec<_> = netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let links = record
        .bridge
        .iter()
        .chain(record.nodes.iter().filter_map(|n| n.veth.as_ref()));
    for link in links {
        let out = output_within(
            Command::new("ip").args(["link", "show", link]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(!out.status.success(), "link {link} left");
    }
    // `down` waited for the supervisors; their units die with them.
    eventually(Duration::from_secs(10), || {
        pids.iter().all(|p| !pid_alive(*p)).then_some(())
    });
}
