//! dcos-metrics on a cluster of a master and an agent: `/ping` and `/node` of both through
//! the master's Admin Router (the agent's under `/system/v1/agent/{id}/metrics`), a task's
//! container with its resource datapoints and the StatsD metric it sends (a few lines of
//! Python) with its tag, 204 for what is not there, every node's Prometheus text on 61091
//! accepted by `promtool check metrics`, and the container gone once its app is removed.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use dcos_testkit::{eventually, Cluster, Node};
use serde_json::{json, Value};

/// Where scripts/install-deps puts Debian's promtool.
const PROMTOOL: &str = "/opt/prometheus-tools/usr/bin/promtool";

/// The app's id and its task's name.
const APP: &str = "statsd-emitter";

/// The StatsD emitter: DC/OS' `statsd_tester.time.uptime` gauge with its tag, every 0.5 s,
/// to where the agent says.
const EMITTER: &str = r#"exec python3 -c '
import os, socket, time
host, port = os.environ["STATSD_UDP_HOST"], int(os.environ["STATSD_UDP_PORT"])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
start = time.time()
while True:
    n = int((time.time() - start) * 1000)
    s.sendto(("statsd_tester.time.uptime:%d|g|#test_tag_key:test_tag_value" % n).encode(), (host, port))
    time.sleep(0.5)
'"#;

/// A GET through the master's Admin Router, from inside the master: status and body.
fn get_text(cluster: &Cluster, m: &Node, path: &str) -> (u16, String) {
    let auth = cluster.auth_header();
    cluster.curl(
        m,
        &["-m", "10", "-H", &auth, &format!("http://{}{path}", m.ip)],
    )
}

/// [`get_text`] as JSON (null if it is not).
fn get(cluster: &Cluster, m: &Node, path: &str) -> (u16, Value) {
    let (status, text) = get_text(cluster, m, path);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Checks a `/v0/node` answer: datapoints with names, filesystems with their paths, the
/// cluster's id and the node's IP; its `mesos_id`.
fn check_node(what: &str, node: &Node, message: &Value, cluster_id: &str) -> String {
    let points = message["datapoints"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: datapoints in {message}"));
    assert!(!points.is_empty(), "{what}: {message}");
    for d in points {
        assert!(
            d["name"].as_str().is_some_and(|n| !n.is_empty()),
            "{what}: a datapoint without a name: {d}"
        );
    }
    let filesystems: Vec<&Value> = points
        .iter()
        .filter(|d| d["name"].as_str().unwrap().starts_with("filesystem."))
        .collect();
    assert!(!filesystems.is_empty(), "{what}: no filesystem datapoints");
    for d in &filesystems {
        assert!(
            d["tags"]["path"].as_str().is_some_and(|p| !p.is_empty()),
            "{what}: a filesystem without its path: {d}"
        );
    }
    let dims = &message["dimensions"];
    assert_eq!(dims["cluster_id"], cluster_id, "{what}: {dims}");
    assert_eq!(dims["hostname"], node.ip.to_string(), "{what}: {dims}");
    dims["mesos_id"].as_str().unwrap_or_default().to_string()
}

/// 61091's text of `node`, fetched from inside it, after `promtool check metrics` accepted
/// it.
fn prometheus_text(cluster: &Cluster, node: &Node) -> String {
    let url = format!("http://{}:61091/metrics", node.ip);
    let (status, text) = cluster.curl(node, &["-m", "20", &url]);
    assert_eq!(status, 200, "{url}: {text}");
    let mut promtool = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = promtool.wait_with_output().expect("promtool's verdict");
    assert!(
        out.status.success(),
        "promtool check metrics refuses {}'s 61091 text: {}{}",
        node.id,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Whether the exposition has a sample whose line starts with `prefix` and holds every one
/// of `labels`.
fn has_series(text: &str, prefix: &str, labels: &[&str]) -> bool {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.starts_with(prefix) && labels.iter().all(|want| l.contains(want)))
}

#[test]
fn node_container_and_app_metrics_through_admin_router_and_prometheus() {
    assert!(
        std::path::Path::new(PROMTOOL).is_file(),
        "{PROMTOOL} is missing: scripts/install-deps installs Debian's promtool there"
    );
    let cluster = crate::master_and_agent();
    let m = cluster.master(0);
    let agent = cluster.agents()[0];
    let cluster_id = cluster
        .record()
        .cluster_id
        .clone()
        .expect("the cluster's record has its id");
    assert!(!cluster_id.is_empty());

    // The agent's id, as the masters know it.
    let ip = agent.ip.to_string();
    let agent_id = eventually(Duration::from_secs(30), || {
        let (_, slaves) = get(&cluster, m, "/mesos/master/slaves");
        slaves["slaves"].as_array()?.iter().find(|s| {
            s["hostname"] == ip.as_str()
                || s["pid"]
                    .as_str()
                    .is_some_and(|p| p.contains(&format!("@{ip}:")))
        })?["id"]
            .as_str()
            .map(str::to_string)
    });
    let on_master = |path: &str| format!("/system/v1/metrics/v0{path}");
    let on_agent = |path: &str| format!("/system/v1/agent/{agent_id}/metrics/v0{path}");

    // 1. /ping of both.
    for path in [on_master("/ping"), on_agent("/ping")] {
        let (status, ping) = get(&cluster, m, &path);
        assert_eq!(status, 200, "{path}: {ping}");
        assert_eq!(ping["ok"], true, "{path}: {ping}");
        assert!(ping["timestamp"].is_string(), "{path}: {ping}");
    }

    // 2. /node of both: named datapoints, filesystems by path, the cluster's id; the
    // agent's mesos_id is its own, the master's the leader's.
    let (status, node) = get(&cluster, m, &on_master("/node"));
    assert_eq!(status, 200, "{node}");
    check_node("master", m, &node, &cluster_id);
    let leader = eventually(Duration::from_secs(20), || {
        let (_, node) = get(&cluster, m, &on_master("/node"));
        let id = check_node("master", m, &node, &cluster_id);
        (!id.is_empty()).then_some(id)
    });
    let (_, state) = get(&cluster, m, "/mesos/master/state");
    assert_eq!(
        state["id"],
        leader.as_str(),
        "the master's mesos_id is the leader's"
    );
    let (status, node) = get(&cluster, m, &on_agent("/node"));
    assert_eq!(status, 200, "{node}");
    let mesos_id = check_node("agent", agent, &node, &cluster_id);
    assert_eq!(mesos_id, agent_id, "the agent's mesos_id is its own");

    // 3. An app sending StatsD: its container, its resource datapoints, its app metric.
    let app = json!({"id": format!("/{APP}"), "cmd": EMITTER, "cpus": 0.1, "mem": 32,
        "instances": 1});
    let (status, created) =
        crate::post_json(&cluster, m, &format!("http://{}:8080/v2/apps", m.ip), &app);
    assert_eq!(status, 201, "{created}");
    let (container_id, message) = eventually(Duration::from_secs(60), || {
        let (status, ids) = get(&cluster, m, &on_agent("/containers"));
        assert_eq!(status, 200, "{ids}");
        ids.as_array()?
            .iter()
            .filter_map(Value::as_str)
            .find_map(|id| {
                let (status, c) = get(&cluster, m, &on_agent(&format!("/containers/{id}")));
                (status == 200 && c["dimensions"]["task_name"] == APP).then(|| (id.to_string(), c))
            })
    });
    let points = message["datapoints"].as_array().unwrap();
    assert!(!points.is_empty(), "{message}");
    for d in points {
        let tags = d["tags"].as_object().unwrap_or_else(|| panic!("tags: {d}"));
        let set = tags
            .values()
            .filter(|v| v.as_str().is_some_and(|v| !v.is_empty()))
            .count();
        assert!(set >= 5, "at least 5 tags set: {d}");
        assert_eq!(tags["container_id"], container_id.as_str(), "{d}");
    }
    let dims = &message["dimensions"];
    assert!(
        dims["executor_id"].as_str().is_some_and(|e| !e.is_empty()),
        "{dims}"
    );
    assert_eq!(dims["container_id"], container_id.as_str(), "{dims}");
    assert_eq!(dims["mesos_id"], agent_id.as_str(), "{dims}");
    assert_eq!(dims["cluster_id"], cluster_id.as_str(), "{dims}");
    assert_eq!(dims["framework_name"], "marathon", "{dims}");

    let app_path = on_agent(&format!("/containers/{container_id}/app"));
    let app_message = eventually(Duration::from_secs(60), || {
        let (status, a) = get(&cluster, m, &app_path);
        (status == 200).then_some(a)
    });
    let uptime = app_message["datapoints"]
        .as_array()
        .unwrap_or_else(|| panic!("{app_message}"))
        .iter()
        .find(|d| d["name"] == "statsd_tester.time.uptime")
        .unwrap_or_else(|| panic!("statsd_tester.time.uptime in {app_message}"));
    assert_eq!(
        keys(uptime),
        ["name", "value", "unit", "timestamp", "tags"].into(),
        "{uptime}"
    );
    assert_eq!(uptime["tags"]["test_tag_key"], "test_tag_value", "{uptime}");
    assert!(uptime["value"].is_number(), "{uptime}");
    let dims = &app_message["dimensions"];
    assert!(dims.is_object(), "{app_message}");
    assert_eq!(dims["container_id"], container_id.as_str(), "{dims}");
    assert_eq!(dims["mesos_id"], agent_id.as_str(), "{dims}");
    let (status, one) = get(
        &cluster,
        m,
        &format!("{app_path}/statsd_tester.time.uptime"),
    );
    assert_eq!(status, 200, "{one}");
    let names: Vec<&Value> = one["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["name"])
        .collect();
    assert!(!names.is_empty() && names.iter().all(|n| *n == "statsd_tester.time.uptime"));

    // 4. What is not there: 204 with nothing.
    for path in [
        on_agent("/containers/no-such-id"),
        format!("{app_path}/nope"),
    ] {
        let (status, body) = get_text(&cluster, m, &path);
        assert_eq!((status, body.as_str()), (204, ""), "{path}");
    }

    // 5. 61091 of both nodes: promtool accepts it; the agent's has the app's metric with its
    // tag and the Mesos agent's; the master's the Mesos master's and Marathon's.
    let text = prometheus_text(&cluster, agent);
    assert!(
        has_series(
            &text,
            "statsd_tester_time_uptime{",
            &["test_tag_key=\"test_tag_value\"", &container_id]
        ),
        "the app's metric on the agent's 61091:\n{text}"
    );
    assert!(has_series(&text, "mesos_slave_", &[]), "{text}");
    let text = prometheus_text(&cluster, m);
    assert!(has_series(&text, "mesos_master_", &[]), "{text}");
    assert!(has_series(&text, "marathon_", &[]), "{text}");

    // 6. The app removed: its container leaves /containers.
    let auth = cluster.auth_header();
    let url = format!("http://{}/marathon/v2/apps/{APP}", m.ip);
    let (status, body) = cluster.curl(m, &["-X", "DELETE", "-H", &auth, &url]);
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(60), || {
        let (status, ids) = get(&cluster, m, &on_agent("/containers"));
        let ids = ids.as_array()?;
        (status == 200 && !ids.iter().any(|id| *id == container_id.as_str())).then_some(())
    });
}
