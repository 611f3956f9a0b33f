use std::time::Duration;

use serde_json::{json, Value};

use dcos_testkit::loopback;

use crate::harness::{agent, eventually, get, launch, task, Scheduler};

fn framework(name: &str) -> Value {
    json!({"user": "root", "name": name, "failover_timeout": 60.0})
}

#[tokio::test]
async fn a_scheduler_that_fails_over_keeps_its_tasks() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let mut s = Scheduler::subscribe(master.addr, framework("failover")).await;
    let offer = s.offer().await;
    assert_eq!(
        s.call(launch(
            &offer,
            vec![task("long", &offer, "sleep 60", 0.1, &[])]
        ))
        .await
        .0,
        202
    );
    s.until("long", "TASK_RUNNING").await;
    let id = s.framework_id.clone();
    s.disconnect();
    eventually(Duration::from_secs(5), "framework disconnected", || async {
        let st = get(&master, "/master/frameworks").await;
        (st["frameworks"][0]["connected"] == false).then_some(())
    })
    .await;
    let mut info = framework("failover");
    info["id"] = json!({"value": id});
    let mut s2 = Scheduler::subscribe(master.addr, info).await;
    assert_eq!(s2.framework_id, id);
    s2.call(json!({"type": "RECONCILE", "reconcile": {"tasks": []}}))
        .await;
    let st = s2.until("long", "TASK_RUNNING").await;
    assert_eq!(st["reason"], "REASON_RECONCILIATION");
    // A teardown kills the task and removes the framework.
    assert_eq!(s2.call(json!({"type": "TEARDOWN"})).await.0, 202);
    eventually(
        Duration::from_secs(10),
        "task killed on the agent",
        || async {
            let st = get(&agent, "/state").await;
            let live = st["frameworks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| !f["executors"].as_array().unwrap().is_empty());
            (!live).then_some(())
        },
    )
    .await;
    let fws = get(&master, "/master/frameworks").await;
    assert_eq!(fws["completed_frameworks"][0]["id"], json!(id));
    agent.stop().await;
    master.stop().await;
}
