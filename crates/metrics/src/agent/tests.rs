use serde_json::json;

use super::*;

fn node() -> NodeDims {
    NodeDims {
        mesos_id: "agent-S0".into(),
        cluster_id: "cluster".into(),
        hostname: "10.0.0.2".into(),
    }
}

fn containers_json() -> serde_json::Value {
    json!([
        {
            "container_id": "c1",
            "executor_id": "web.1",
            "executor_name": "web",
            "framework_id": "fw-0000",
            "source": "web.1",
            "status": {"container_id": {"value": "c1"}},
            "statistics": {
                "timestamp": 1.0,
                "processes": 2,
                "threads": 3,
                "cpus_user_time_secs": 1.5,
                "cpus_system_time_secs": 0.25,
                "cpus_limit": 0.1,
                "mem_rss_bytes": 1048576,
                "mem_total_bytes": 1048576,
                "mem_limit_bytes": 33554432,
                "disk_used_bytes": 4096,
                "unknown_field": "x"
            }
        },
        {"container_id": "c2", "executor_id": "other.1", "framework_id": "fw-gone", "statistics": null},
        {"container_id": "", "executor_id": "nameless"}
    ])
}

fn state_json() -> serde_json::Value {
    json!({
        "id": "agent-S0",
        "frameworks": [{
            "id": "fw-0000",
            "name": "marathon",
            "role": "slave_public",
            "principal": "dcos_marathon",
            "executors": [{
                "id": "web.1",
                "name": "Command Executor",
                "container": "c1",
                "tasks": [{
                    "id": "web.1",
                    "name": "web",
                    "labels": [
                        {"key": "team", "value": "ops"},
                        {"key": "DCOS_PACKAGE_METADATA", "value": "eyJ"},
                        {"key": "long", "value": "x".repeat(MAX_LABEL_LENGTH + 1)},
                        {"key": "novalue"}
                    ]
                }]
            }],
            "completed_executors": []
        }]
    })
}

#[test]
fn containers_get_the_task_and_framework_dimensions_and_their_statistics() {
    let list: Vec<AgentContainer> = serde_json::from_value(containers_json()).unwrap();
    let state: AgentState = serde_json::from_value(state_json()).unwrap();
    let view = containers(&list, &state, &node());
    assert_eq!(view.keys().collect::<Vec<_>>(), ["c1", "c2"]);
    let c1 = &view["c1"];
    assert_eq!(
        serde_json::to_value(&c1.dimensions).unwrap(),
        json!({
            "mesos_id": "agent-S0",
            "cluster_id": "cluster",
            "container_id": "c1",
            "executor_id": "web.1",
            "framework_name": "marathon",
            "framework_id": "fw-0000",
            "framework_role": "slave_public",
            "framework_principal": "dcos_marathon",
            "task_name": "web",
            "task_id": "web.1",
            "hostname": "10.0.0.2",
            "labels": {"team": "ops", "novalue": ""}
        })
    );
    let names: Vec<&str> = c1.datapoints.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "processes",
            "threads",
            "cpus.user.time",
            "cpus.system.time",
            "cpus.limit",
            "mem.total",
            "mem.limit",
            "mem.rss",
            "disk.used"
        ]
    );
    let user = &c1.datapoints[2];
    assert_eq!((user.value.0, user.unit.as_str()), (1.5, "seconds"));
    // The real collector's five tags, the same container id in all.
    for d in &c1.datapoints {
        assert_eq!(d.tags.len(), 5);
        assert_eq!(d.tags["container_id"], "c1");
        assert_eq!(d.tags["executor_name"], "web");
        assert!(d.tags.values().all(|v| !v.is_empty()), "{d:?}");
    }
    // A container the state does not know and that has no statistics: ids only.
    let c2 = &view["c2"];
    assert!(c2.datapoints.is_empty());
    assert_eq!(c2.dimensions.framework_id, "fw-gone");
    assert_eq!(c2.dimensions.framework_name, "");
}

#[test]
fn a_masters_id_is_the_leaders() {
    let s: MasterState =
        serde_json::from_value(json!({"id": "m2", "leader_info": {"id": "m1", "port": 5050}}))
            .unwrap();
    assert_eq!(s.mesos_id(), "m1");
    let s: MasterState = serde_json::from_value(json!({"id": "m2"})).unwrap();
    assert_eq!(s.mesos_id(), "m2");
}

#[test]
fn statistics_of_the_wrong_type_are_skipped() {
    let c: AgentContainer = serde_json::from_value(json!({
        "container_id": "c",
        "statistics": {"cpus_limit": "one", "mem_total_bytes": 5}
    }))
    .unwrap();
    let points = container_datapoints(&c);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].name, "mem.total");
}
