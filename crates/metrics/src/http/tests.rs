use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use super::*;
use crate::agent::{self, AgentContainer, AgentState, NodeDims};
use crate::relay::Origin;
use crate::{Config, Role};

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

fn config(role: Role) -> Config {
    let mut c = Config::new(role, "/nonexistent.sock".into(), IP);
    c.cluster_id = "cluster-1".into();
    // Nothing listens there: reads fail at once and the preset view stays.
    if role == Role::Agent {
        c.agent = Some("http://127.0.0.1:9".into());
    }
    c
}

async fn get(router: &Router, path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let resp = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ct, body)
}

async fn get_json(router: &Router, path: &str) -> Value {
    let (status, ct, body) = get(router, path).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{path}: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(ct.as_deref(), Some(JSON), "{path}");
    assert_eq!(
        body.last(),
        Some(&b'\n'),
        "{path}: Go's encoder ends in a newline"
    );
    serde_json::from_slice(&body).unwrap()
}

/// An agent collector whose agent runs container `c1` of task `web.1`, which sent two
/// StatsD samples.
async fn agent_with_a_container() -> (Arc<Collector>, Router) {
    let collector = Arc::new(Collector::new(config(Role::Agent)));
    let list: Vec<AgentContainer> = serde_json::from_value(json!([{
        "container_id": "c1",
        "executor_id": "web.1",
        "executor_name": "web",
        "framework_id": "fw-0000",
        "source": "web.1",
        "statistics": {"cpus_user_time_secs": 1.5, "mem_total_bytes": 1024, "disk_used_bytes": 8}
    }, {
        "container_id": "c2", "executor_id": "idle.1", "framework_id": "fw-0000"
    }]))
    .unwrap();
    let state: AgentState = serde_json::from_value(json!({
        "id": "agent-S0",
        "frameworks": [{"id": "fw-0000", "name": "marathon", "role": "*", "executors": [{
            "id": "web.1", "container": "c1",
            "tasks": [{"id": "web.1", "name": "web", "labels": [{"key": "team", "value": "ops"}]}]
        }]}]
    }))
    .unwrap();
    let node = NodeDims {
        mesos_id: "agent-S0".into(),
        cluster_id: "cluster-1".into(),
        hostname: IP.to_string(),
    };
    collector
        .preset_view(agent::containers(&list, &state, &node))
        .await;
    let origin = Origin {
        container_id: "c1",
        executor_id: "web.1",
        framework_id: "fw-0000",
    };
    collector.apps.record(
        origin,
        crate::statsd::parse_packet(
            b"statsd_tester.time.uptime:1234|g|#test_tag_key:test_tag_value\nreqs:3|c|@0.5",
        ),
    );
    let router = router(collector.clone());
    (collector, router)
}

#[tokio::test]
async fn ping_answers_ok_and_the_time() {
    let r = router(Arc::new(Collector::new(config(Role::Master))));
    let v = get_json(&r, "/v0/ping").await;
    assert_eq!(v["ok"], true);
    let ts = v["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert_eq!(v.as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn node_has_datapoints_and_the_node_dimensions() {
    let r = router(Arc::new(Collector::new(config(Role::Master))));
    let v = get_json(&r, "/v0/node").await;
    let dims = &v["dimensions"];
    assert_eq!(dims["cluster_id"], "cluster-1");
    assert_eq!(dims["hostname"], "10.0.0.2");
    assert_eq!(dims["mesos_id"], "");
    let points = v["datapoints"].as_array().unwrap();
    assert!(!points.is_empty());
    for d in points {
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert!(
            keys == ["name", "timestamp", "unit", "value"]
                || keys == ["name", "tags", "timestamp", "unit", "value"],
            "{d}"
        );
        if d["name"].as_str().unwrap().starts_with("filesystem.") {
            assert!(!d["tags"]["path"].as_str().unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn a_node_that_reads_nothing_answers_204() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(Role::Master);
    c.proc_root = dir.path().join("missing");
    let r = router(Arc::new(Collector::new(c)));
    let (status, _, body) = get(&r, "/v0/node").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
}

#[tokio::test]
async fn masters_have_no_container_routes() {
    let r = router(Arc::new(Collector::new(config(Role::Master))));
    for path in [
        "/v0/containers",
        "/v0/containers/c1",
        "/v0/containers/c1/app",
        "/nope",
    ] {
        let (status, _, body) = get(&r, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body, b"404 page not found\n");
    }
}

#[tokio::test]
async fn containers_lists_the_agents_and_those_with_app_metrics() {
    let (collector, r) = agent_with_a_container().await;
    collector.apps.record(
        Origin {
            container_id: "c3",
            executor_id: "",
            framework_id: "",
        },
        crate::statsd::parse_packet(b"m:1|g"),
    );
    assert_eq!(
        get_json(&r, "/v0/containers").await,
        json!(["c1", "c2", "c3"])
    );
    let empty = router(Arc::new(Collector::new(config(Role::Agent))));
    assert_eq!(get_json(&empty, "/v0/containers").await, json!([]));
}

#[tokio::test]
async fn a_container_has_its_resource_datapoints_with_five_tags_and_its_dimensions() {
    let (_, r) = agent_with_a_container().await;
    let v = get_json(&r, "/v0/containers/c1").await;
    assert_eq!(
        v["dimensions"],
        json!({
            "mesos_id": "agent-S0",
            "cluster_id": "cluster-1",
            "container_id": "c1",
            "executor_id": "web.1",
            "framework_name": "marathon",
            "framework_id": "fw-0000",
            "framework_role": "*",
            "task_name": "web",
            "task_id": "web.1",
            "hostname": "10.0.0.2",
            "labels": {"team": "ops"}
        })
    );
    let points = v["datapoints"].as_array().unwrap();
    let names: Vec<&str> = points.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cpus.user.time", "mem.total", "disk.used"]);
    for d in points {
        let tags = d["tags"].as_object().unwrap();
        assert!(tags.values().filter(|v| v != &"").count() >= 5, "{d}");
        assert_eq!(tags["container_id"], "c1");
    }
    assert_eq!(points[1]["value"], 1024);
    assert_eq!(points[1]["unit"], "bytes");
}

#[tokio::test]
async fn unknown_containers_and_metrics_answer_204() {
    let (_, r) = agent_with_a_container().await;
    for path in [
        "/v0/containers/nope",
        "/v0/containers/c2",
        "/v0/containers/c2/app",
        "/v0/containers/nope/app",
        "/v0/containers/c1/app/nope",
        "/v0/containers/..%2F..%2Fetc/app",
        "/v0/containers/a%20b",
        &format!("/v0/containers/{}", "x".repeat(MAX_ID + 1)),
        &format!("/v0/containers/c1/app/{}", "m".repeat(MAX_METRIC + 1)),
    ] {
        let (status, _, body) = get(&r, path).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}");
        assert!(body.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn app_metrics_carry_their_tags_the_task_labels_and_the_dimensions() {
    let (_, r) = agent_with_a_container().await;
    let v = get_json(&r, "/v0/containers/c1/app").await;
    let points = v["datapoints"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    let uptime = points
        .iter()
        .find(|d| d["name"] == "statsd_tester.time.uptime")
        .unwrap();
    let mut keys: Vec<&String> = uptime.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["name", "tags", "timestamp", "unit", "value"]);
    assert_eq!(uptime["value"], 1234);
    assert_eq!(uptime["unit"], "");
    assert_eq!(
        uptime["tags"],
        json!({"test_tag_key": "test_tag_value", "team": "ops"})
    );
    let reqs = points.iter().find(|d| d["name"] == "reqs").unwrap();
    assert_eq!(reqs["value"], 6);
    let dims = &v["dimensions"];
    assert_eq!(dims["container_id"], "c1");
    assert_eq!(dims["executor_id"], "web.1");
    assert_eq!(dims["task_name"], "web");
    assert_eq!(dims["mesos_id"], "agent-S0");
    assert!(dims.get("labels").is_none(), "labels moved into tags");

    let one = get_json(&r, "/v0/containers/c1/app/reqs").await;
    assert_eq!(one["datapoints"].as_array().unwrap().len(), 1);
    assert_eq!(one["datapoints"][0]["name"], "reqs");
}

#[tokio::test]
async fn app_metrics_of_a_container_the_agent_does_not_list_use_the_relayed_ids() {
    let collector = Arc::new(Collector::new(config(Role::Agent)));
    collector.preset_view(BTreeMap::new()).await;
    collector.apps.record(
        Origin {
            container_id: "new",
            executor_id: "e",
            framework_id: "f",
        },
        crate::statsd::parse_packet(b"m:1.5|g"),
    );
    let v = get_json(&router(collector), "/v0/containers/new/app").await;
    assert_eq!(v["dimensions"]["executor_id"], "e");
    assert_eq!(v["dimensions"]["framework_id"], "f");
    assert_eq!(v["dimensions"]["cluster_id"], "cluster-1");
    assert_eq!(v["datapoints"][0]["value"], 1.5);
}

#[tokio::test]
async fn prometheus_has_node_container_and_app_samples() {
    let (collector, _) = agent_with_a_container().await;
    let r = prometheus_router(collector);
    let (status, ct, body) = get(&r, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some(PROMETHEUS));
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("# TYPE memory_total untyped\n"), "{text}");
    assert!(text.contains("# HELP cpu_idle DC/OS Metrics Datapoint\n"));
    assert!(text
        .lines()
        .any(|l| l.starts_with("filesystem_capacity_used{") && l.contains("path=\"/")));
    let uptime = text
        .lines()
        .find(|l| l.starts_with("statsd_tester_time_uptime{"))
        .unwrap();
    for label in [
        "container_id=\"c1\"",
        "test_tag_key=\"test_tag_value\"",
        "team=\"ops\"",
        "cluster_id=\"cluster-1\"",
        "hostname=\"10.0.0.2\"",
    ] {
        assert!(uptime.contains(label), "{uptime}");
    }
    assert!(uptime.ends_with(" 1234"));
    assert!(text.lines().any(|l| l.starts_with("cpus_user_time{")));
    let (status, _, _) = get(&r, "/other").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tags_cannot_spoof_identity_dimensions_or_labels() {
    let (collector, r) = agent_with_a_container().await;
    collector.apps.record(
        Origin {
            container_id: "c1",
            executor_id: "web.1",
            framework_id: "fw-0000",
        },
        crate::statsd::parse_packet(
            b"spoof:1|g|#container.id:evil,Task-Name:evil,hostname:evil,mesos-id:evil,team:evil,ok:1",
        ),
    );
    let v = get_json(&r, "/v0/containers/c1/app/spoof").await;
    assert_eq!(
        v["datapoints"][0]["tags"],
        json!({"team": "ops", "ok": "1"})
    );
    assert_eq!(v["dimensions"]["container_id"], "c1");
    let (_, _, body) = get(&prometheus_router(collector), "/metrics").await;
    let text = String::from_utf8(body).unwrap();
    let line = text.lines().find(|l| l.starts_with("spoof{")).unwrap();
    assert!(!line.contains("evil"), "{line}");
    for label in [
        "container_id=\"c1\"",
        "task_name=\"web\"",
        "team=\"ops\"",
        "ok=\"1\"",
    ] {
        assert!(line.contains(label), "{line}");
    }
}
