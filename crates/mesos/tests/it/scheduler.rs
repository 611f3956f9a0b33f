use std::time::Duration;

use serde_json::json;

use dcos_testkit::loopback;

use crate::harness::{agent, eventually, framework, get, launch, task, Scheduler};

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

#[tokio::test]
async fn a_restarted_master_keeps_its_registry_and_takes_back_the_agents_tasks() {
    let master_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let master =
        loopback::master_on("127.0.0.1:0".parse().unwrap(), master_dir.path().into()).await;
    let addr = master.addr;
    let agent = agent(addr, agent_dir.path().into()).await;
    let agent_addr = agent.addr;
    let mut s = Scheduler::subscribe(addr, framework("registry")).await;
    let offer = s.offer().await;
    let t = task("keeper", &offer, "exec sleep 600", 0.1, &[]);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("keeper", "TASK_RUNNING").await;
    let agent_id = running["agent_id"]["value"].as_str().unwrap().to_string();
    let framework_id = s.framework_id.clone();
    s.disconnect();
    agent.stop_keeping_tasks().await;
    master.stop().await;

    let master = loopback::master_on(addr, master_dir.path().into()).await;
    // Before the agent is back, the registry's agent is known as recovered.
    let st = get(&master, "/master/state").await;
    assert_eq!(st["recovered_slaves"][0]["id"], agent_id.as_str(), "{st}");
    let agent = crate::harness::agent_on(agent_addr, addr, agent_dir.path().into()).await;
    eventually(
        Duration::from_secs(10),
        "the agent re-registered",
        || async {
            let st = get(&master, "/master/state").await;
            let back = st["slaves"]
                .as_array()?
                .iter()
                .any(|a| a["id"] == agent_id.as_str() && a["active"] == true);
            (back && st["recovered_slaves"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;
    let tasks = get(&master, "/master/tasks").await;
    assert_eq!(tasks["tasks"][0]["id"], "keeper", "{tasks}");
    assert_eq!(tasks["tasks"][0]["state"], "TASK_RUNNING");
    // The framework fails over to the new master and still owns its task.
    let mut info = framework("registry");
    info["id"] = json!({"value": framework_id});
    let mut s = Scheduler::subscribe(addr, info).await;
    let (code, _) = s
        .call(json!({"type": "KILL", "kill": {"task_id": {"value": "keeper"}}}))
        .await;
    assert_eq!(code, 202);
    s.until("keeper", "TASK_KILLED").await;
    agent.stop().await;
    master.stop().await;
}
