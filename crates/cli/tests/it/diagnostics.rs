//! dcos-diagnostics on a cluster of a master, an agent and a public agent: every unit of
//! every node healthy with dcos-diagnostics' exact key sets, the nodes with their roles, a
//! stopped unit (alive, not answering) and a killed one reported with their reasons and
//! healthy again, unknown names refused, and a bundle made, listed, downloaded and deleted.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::time::Duration;

use dcos_testkit::{eventually, Cluster, Node};
use serde_json::Value;

use crate::DCOS;

/// A GET through the master's Admin Router, from inside the master: status and JSON.
fn get(cluster: &Cluster, m: &Node, path: &str) -> (u16, Value) {
    let auth = cluster.auth_header();
    crate::curl(
        cluster,
        m,
        &["-m", "10", "-H", &auth, &format!("http://{}{path}", m.ip)],
    )
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

/// A node's own report, asked where the masters pull it (1050 on masters, 61001 on agents).
fn own(cluster: &Cluster, from: &Node, node: &Node) -> Value {
    let port = if node.role == "master" { 1050 } else { 61001 };
    let url = format!("http://{}:{port}/system/health/v1", node.ip);
    let (status, body) = crate::curl(cluster, from, &["-m", "10", &url]);
    assert_eq!(status, 200, "{url}: {body}");
    body
}

fn unit_health(report: &Value, unit: &str) -> Option<(u64, String)> {
    let u = report["units"]
        .as_array()?
        .iter()
        .find(|u| u["id"] == unit)?;
    Some((u["health"].as_u64()?, u["output"].as_str()?.to_string()))
}

#[test]
fn every_unit_of_every_node_is_reported_and_aggregated() {
    let cluster = Cluster::builder()
        .masters(1)
        .agents(1)
        .public_agents(1)
        .binary(DCOS)
        .start()
        .expect("start the cluster");
    let m = cluster.master(0);
    let agent = cluster.agents()[0];
    let public = cluster.public_agents()[0];

    // Every node's own report: 7 keys, units of 6, all healthy.
    for node in [m, agent, public] {
        let report = eventually(Duration::from_secs(60), || {
            let r = own(&cluster, m, node);
            let healthy = r["units"].as_array()?.iter().all(|u| u["health"] == 0);
            (healthy && r["mesos_id"].as_str().is_some_and(|id| !id.is_empty())).then_some(r)
        });
        assert_eq!(
            keys(&report),
            set(&[
                "units",
                "hostname",
                "ip",
                "dcos_version",
                "node_role",
                "mesos_id",
                "dcos_diagnostics_version"
            ])
        );
        assert_eq!(report["ip"], node.ip.to_string());
        for unit in report["units"].as_array().unwrap() {
            assert_eq!(
                keys(unit),
                set(&["id", "health", "output", "description", "help", "name"])
            );
        }
        assert!(unit_health(&report, "dcos-diagnostics.service").is_some());
    }

    // The aggregate: every node's units, 4 keys each, all healthy; the nodes with roles.
    let (status, units) = get(&cluster, m, "/system/health/v1/units?cache=0");
    assert_eq!(status, 200, "{units}");
    let units = units["units"].as_array().unwrap().clone();
    for u in &units {
        assert_eq!(keys(u), set(&["id", "name", "health", "description"]));
        assert_eq!(u["health"], 0, "{u}");
    }
    let ids: BTreeSet<&str> = units.iter().filter_map(|u| u["id"].as_str()).collect();
    for unit in [
        "dcos-mesos-master.service",
        "dcos-mesos-slave.service",
        "dcos-marathon.service",
        "dcos-adminrouter-agent",
        "dcos-net.service",
        "dcos-diagnostics.service",
    ] {
        assert!(ids.contains(unit), "{unit} in {ids:?}");
    }
    let (_, nodes) = get(&cluster, m, "/system/health/v1/nodes");
    assert_eq!(keys(&nodes), set(&["nodes"]));
    let mut roles: Vec<(String, String)> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(keys(n), set(&["host_ip", "health", "role"]));
            (
                n["host_ip"].as_str().unwrap().to_string(),
                n["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    roles.sort();
    let mut want = vec![
        (m.ip.to_string(), "master".to_string()),
        (agent.ip.to_string(), "agent".to_string()),
        (public.ip.to_string(), "agent_public".to_string()),
    ];
    want.sort();
    assert_eq!(roles, want);
    let (_, on) = get(
        &cluster,
        m,
        "/system/health/v1/units/dcos-mesos-master.service/nodes",
    );
    assert_eq!(on["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(on["nodes"][0]["host_ip"], m.ip.to_string());
    let (_, on) = get(
        &cluster,
        m,
        "/system/health/v1/units/dcos-mesos-slave.service/nodes",
    );
    assert_eq!(on["nodes"].as_array().unwrap().len(), 2);
    let path = format!(
        "/system/health/v1/units/dcos-net.service/nodes/{}",
        agent.ip
    );
    let (_, one) = get(&cluster, m, &path);
    assert_eq!(
        keys(&one),
        set(&["host_ip", "health", "role", "output", "help"])
    );
    assert!(!one["help"].as_str().unwrap().is_empty());
    let path = format!("/system/health/v1/nodes/{}/units", public.ip);
    let (_, node_units) = get(&cluster, m, &path);
    assert_eq!(keys(&node_units), set(&["units"]));
    let path = format!(
        "/system/health/v1/nodes/{}/units/dcos-net.service",
        public.ip
    );
    let (_, unit) = get(&cluster, m, &path);
    assert_eq!(keys(&unit).len(), 6);
    let (_, report) = get(&cluster, m, "/system/health/v1/report");
    assert!(!report["Units"].as_object().unwrap().is_empty());
    assert_eq!(report["Nodes"].as_object().unwrap().len(), 3);

    // Unknown names: dcos-diagnostics' 500 with the name; nothing else.
    let auth = cluster.auth_header();
    for (path, text) in [
        (
            "/system/health/v1/units/nope.service",
            "Unit nope.service not found",
        ),
        (
            "/system/health/v1/nodes/10.255.255.254",
            "Node 10.255.255.254 not found",
        ),
    ] {
        let (status, body) = cluster.curl(m, &["-H", &auth, &format!("http://{}{path}", m.ip)]);
        assert_eq!((status, body.trim()), (500, text), "{path}");
    }

    // A unit that hangs (SIGSTOP: alive, answering nothing) is unhealthy with that reason,
    // and healthy again when it runs on.
    let pid = cluster
        .unit_pid(agent, "dcos-net.service")
        .expect("dcos-net runs");
    let signal = |sig| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
    };
    signal(nix::sys::signal::Signal::SIGSTOP);
    let (health, output) = eventually(Duration::from_secs(10), || {
        unit_health(&own(&cluster, m, agent), "dcos-net.service").filter(|(h, _)| *h == 1)
    });
    assert_eq!(health, 1);
    assert!(output.contains("stopped"), "{output}");
    let path = format!(
        "/system/health/v1/nodes/{}/units/dcos-net.service?cache=0",
        agent.ip
    );
    let (_, unit) = get(&cluster, m, &path);
    assert_eq!(unit["health"], 1, "the masters' aggregate sees it: {unit}");
    signal(nix::sys::signal::Signal::SIGCONT);
    eventually(Duration::from_secs(10), || {
        unit_health(&own(&cluster, m, agent), "dcos-net.service").filter(|(h, _)| *h == 0)
    });

    // A killed unit is unhealthy until its supervisor has it running again.
    cluster.kill_unit(agent, "dcos-net.service");
    let seen = eventually(Duration::from_secs(10), || {
        unit_health(&own(&cluster, m, agent), "dcos-net.service").filter(|(h, _)| *h == 1)
    });
    assert!(
        seen.1.contains("exited") || seen.1.contains("starting") || seen.1.contains("gone"),
        "{}",
        seen.1
    );
    eventually(Duration::from_secs(30), || {
        unit_health(&own(&cluster, m, agent), "dcos-net.service").filter(|(h, _)| *h == 0)
    });

    // A bundle: created for every node, listed, downloaded (a folder per node with its
    // health report), deleted. Bad names are refused.
    let url = format!("http://{}/system/health/v1/report/diagnostics/create", m.ip);
    let (status, created) = crate::curl(
        &cluster,
        m,
        &[
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"nodes": ["all"]}"#,
            &url,
        ],
    );
    assert_eq!(status, 200, "{created}");
    let name = created["extra"]["bundle_name"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(Duration::from_secs(60), || {
        let (_, st) = get(&cluster, m, "/system/health/v1/report/diagnostics/status");
        (st["is_running"] == false).then_some(())
    });
    let (_, list) = get(&cluster, m, "/system/health/v1/report/diagnostics/list");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert!(list[0]["file_name"].as_str().unwrap().ends_with(&name));
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join(&name);
    let url = format!(
        "http://{}/system/health/v1/report/diagnostics/serve/{name}",
        m.ip
    );
    let out = cluster.exec(
        m,
        &[
            "curl",
            "-sS",
            "-H",
            &auth,
            "-o",
            zip_path.to_str().unwrap(),
            &url,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    for (node, role) in [(m, "master"), (agent, "agent"), (public, "agent_public")] {
        let entry = format!("{}_{role}/dcos-diagnostics-health.json", node.ip);
        let mut text = String::new();
        archive
            .by_name(&entry)
            .unwrap_or_else(|e| panic!("{entry}: {e}"))
            .read_to_string(&mut text)
            .unwrap();
        let health: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(health["ip"], node.ip.to_string());
        let log = format!("{}_{role}/dcos-net.service.log", node.ip);
        assert!(archive.by_name(&log).is_ok(), "{log}");
    }
    for (path, code) in [("delete/..%2Fetc.zip", 400), ("delete/bundle-0-0.zip", 404)] {
        let url = format!("http://{}/system/health/v1/report/diagnostics/{path}", m.ip);
        let (status, _) = cluster.curl(m, &["-X", "POST", "-H", &auth, &url]);
        assert_eq!(status, code, "{path}");
    }
    let url = format!(
        "http://{}/system/health/v1/report/diagnostics/delete/{name}",
        m.ip
    );
    let (status, _) = cluster.curl(m, &["-X", "POST", "-H", &auth, &url]);
    assert_eq!(status, 200);
    let (_, list) = get(&cluster, m, "/system/health/v1/report/diagnostics/list");
    assert_eq!(list, serde_json::json!([]));
}
