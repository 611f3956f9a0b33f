//! Service discovery on a whole cluster: a Marathon app's task is resolvable by name from
//! every node, with the real `dig`, through each node's dcos-net (port 53 on its IP and on
//! its loopback), Mesos-DNS on the master and the gossip of dcos-net's own zones.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use dcos_testkit::dns::tidy;
use dcos_testkit::{eventually, Cluster, Node};
use serde_json::json;

use crate::{curl, post_json, DCOS};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `dig @server <args>` run inside `node`, tidied.
fn dig(cluster: &Cluster, node: &Node, server: IpAddr, args: &[&str]) -> String {
    let mut argv = vec![
        "dig".to_string(),
        format!("@{server}"),
        "+time=2".into(),
        "+tries=1".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    tidy(&cluster.exec(node, &argv).stdout)
}

/// Digs until the output contains `want`.
fn dig_until(cluster: &Cluster, node: &Node, server: IpAddr, args: &[&str], want: &str) -> String {
    let mut last = String::new();
    eventually(Duration::from_secs(20), || {
        last = dig(cluster, node, server, args);
        last.contains(want).then(|| last.clone())
    })
}

#[test]
fn an_apps_task_resolves_from_every_node_until_it_is_killed() {
    let cluster = Cluster::builder()
        .masters(1)
        .agents(1)
        .public_agents(1)
        .binary(DCOS)
        .start()
        .expect("start the cluster");
    let master = cluster.master(0);
    let marathon = format!("http://{}:8080", master.ip);

    let app = json!({"id": "/web", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16,
        "instances": 1, "portDefinitions": [{"port": 0, "name": "http"}]});
    let (status, body) = post_json(&cluster, master, &format!("{marathon}/v2/apps"), &app);
    assert_eq!(status, 201, "{body}");
    let task = eventually(Duration::from_secs(30), || {
        let (_, tasks) = curl(
            &cluster,
            master,
            &[&format!("{marathon}/v2/apps/web/tasks")],
        );
        tasks["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["state"] == "TASK_RUNNING")
            .cloned()
    });
    let host_port = task["ports"][0].as_u64().expect("a host port");
    let agent_ip: IpAddr = task["host"].as_str().unwrap().parse().unwrap();
    assert!(cluster
        .nodes()
        .iter()
        .any(|n| n.ip == agent_ip && n.role != "master"));

    for node in cluster.nodes() {
        for server in [node.ip, LOCALHOST] {
            let a = dig_until(&cluster, node, server, &["web.marathon.mesos"], "NOERROR");
            assert!(
                a.contains(&format!("web.marathon.mesos. 60 IN A {agent_ip}")),
                "{} @{server}: {a}",
                node.id
            );
        }
        let srv = dig(
            &cluster,
            node,
            node.ip,
            &["+short", "SRV", "_web._tcp.marathon.mesos"],
        );
        assert!(
            srv.contains(&format!("0 1 {host_port} web-")),
            "{}: {srv}",
            node.id
        );
        let leader = dig(&cluster, node, node.ip, &["+short", "leader.mesos"]);
        assert_eq!(leader.trim(), master.ip.to_string(), "{}", node.id);
        let missing = dig(&cluster, node, node.ip, &["nothing.marathon.mesos"]);
        assert!(
            missing.contains("status: NXDOMAIN"),
            "{}: {missing}",
            node.id
        );
        // dcos-net's own names, made on the master and gossiped to every node.
        let agentip = dig_until(
            &cluster,
            node,
            node.ip,
            &["+short", "web.marathon.agentip.dcos.thisdcos.directory"],
            &agent_ip.to_string(),
        );
        assert_eq!(agentip.trim(), agent_ip.to_string(), "{}", node.id);
        let zk = dig(&cluster, node, LOCALHOST, &["+short", "zk-1.zk"]);
        assert_eq!(zk.trim(), master.ip.to_string(), "{}", node.id);
    }
    // Each node's dcos-net knows every node through the gossip.
    let (_, nodes) = curl(
        &cluster,
        master,
        &[&format!("http://{}:62080/v1/nodes", master.ip)],
    );
    assert_eq!(
        nodes.as_array().map(Vec::len),
        Some(cluster.nodes().len()),
        "{nodes}"
    );

    // Destroying the app kills the task: its names are gone from every node.
    let (status, body) = curl(
        &cluster,
        master,
        &["-X", "DELETE", &format!("{marathon}/v2/apps/web")],
    );
    assert_eq!(status, 200, "{body}");
    for node in cluster.nodes() {
        dig_until(
            &cluster,
            node,
            node.ip,
            &["web.marathon.mesos"],
            "status: NXDOMAIN",
        );
        dig_until(
            &cluster,
            node,
            node.ip,
            &["web.marathon.agentip.dcos.thisdcos.directory"],
            "status: NXDOMAIN",
        );
    }
}
