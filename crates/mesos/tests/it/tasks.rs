//! Tasks end to end: launch with ports and environment, kill, reconcile, bad calls, and an
//! agent restart that re-attaches to its running task.

use std::time::Duration;

use serde_json::json;

use dcos_testkit::loopback;

use crate::harness::{
    agent, agent_on, eventually, framework, get, launch, sandbox_of, task, Scheduler,
};

#[tokio::test]
async fn a_task_runs_in_its_sandbox_with_its_ports_and_environment() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let mut s = Scheduler::subscribe(master.addr, framework("env")).await;
    let offer = s.offer().await;
    let ports = offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ports")
        .expect("offer has ports")
        .clone();
    assert_eq!(
        ports["ranges"]["range"][0],
        json!({"begin": 31000, "end": 31009})
    );
    let cmd =
        r#"echo "host=$HOST ports=$PORTS p0=$PORT0 p1=$PORT1 id=$MESOS_TASK_ID sb=$MESOS_SANDBOX""#;
    let t = task("envtask", &offer, cmd, 0.5, &[(31002, 31003)]);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    s.until("envtask", "TASK_RUNNING").await;
    let done = s.until("envtask", "TASK_FINISHED").await;
    assert_eq!(done["source"], "SOURCE_EXECUTOR");
    let st = get(&agent, "/state").await;
    let sandbox = sandbox_of(&st, "envtask").expect("the task's sandbox in /state");
    let read = get(
        &agent,
        &format!("/files/read?path={sandbox}/stdout&offset=0"),
    )
    .await;
    let data = read["data"].as_str().unwrap();
    assert_eq!(
        data.trim(),
        format!("host=127.0.0.1 ports=31002,31003 p0=31002 p1=31003 id=envtask sb={sandbox}")
    );
    assert!(
        sandbox.contains("/slaves/") && sandbox.contains("/frameworks/"),
        "{sandbox}"
    );
    // The task's resources are offered again once it ends.
    let state = get(&master, "/master/state").await;
    assert_eq!(state["completed_frameworks"], json!([]));
    assert_eq!(
        state["frameworks"][0]["completed_tasks"][0]["state"],
        "TASK_FINISHED"
    );
    agent.stop().await;
    master.stop().await;
}

#[tokio::test]
async fn kill_ends_a_task_and_reconcile_reports_what_is_known() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let mut s = Scheduler::subscribe(master.addr, framework("kill")).await;
    let offer = s.offer().await;
    let t = task("sleeper", &offer, "exec sleep 600", 0.1, &[]);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("sleeper", "TASK_RUNNING").await;
    let agent_id = running["agent_id"].clone();
    // The summary counts the task on its agent and its framework.
    let summary = get(&master, "/master/state-summary").await;
    let on_agent = &summary["slaves"][0];
    assert_eq!(on_agent["id"], agent_id["value"], "{summary}");
    assert_eq!(on_agent["TASK_RUNNING"], 1, "{summary}");
    assert_eq!(
        on_agent["framework_ids"],
        json!([s.framework_id]),
        "{summary}"
    );
    let fw = &summary["frameworks"][0];
    assert_eq!(
        (&fw["TASK_RUNNING"], &fw["slave_ids"]),
        (&json!(1), &json!([agent_id["value"]])),
        "{summary}"
    );
    // Explicit reconciliation of a known and an unknown task.
    let (code, _) = s
        .call(json!({"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "sleeper"}, "agent_id": agent_id},
            {"task_id": {"value": "nosuch"}}
        ]}}))
        .await;
    assert_eq!(code, 202);
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 2 {
        let ev = s.next("UPDATE").await;
        let st = &ev["update"]["status"];
        assert!(
            st.get("uuid").is_none(),
            "reconciliation updates carry no uuid: {st}"
        );
        seen.insert(
            st["task_id"]["value"].as_str().unwrap().to_string(),
            st["state"].as_str().unwrap().to_string(),
        );
    }
    assert_eq!(seen["sleeper"], "TASK_RUNNING");
    assert_eq!(seen["nosuch"], "TASK_LOST");
    let (code, _) = s
        .call(json!({"type": "KILL", "kill": {"task_id": {"value": "sleeper"}, "agent_id": agent_id}}))
        .await;
    assert_eq!(code, 202);
    let killed = s.until("sleeper", "TASK_KILLED").await;
    assert_eq!(killed["agent_id"], agent_id);
    let tasks = get(&master, "/master/tasks").await;
    assert_eq!(tasks["tasks"][0]["state"], "TASK_KILLED");
    let summary = get(&master, "/master/state-summary").await;
    let on_agent = &summary["slaves"][0];
    assert_eq!(
        (&on_agent["TASK_RUNNING"], &on_agent["TASK_KILLED"]),
        (&json!(0), &json!(1)),
        "{summary}"
    );
    assert_eq!(on_agent["framework_ids"], json!([]), "{summary}");
    agent.stop().await;
    master.stop().await;
}

#[tokio::test]
async fn malformed_and_impossible_calls_get_mesos_errors_and_change_nothing() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let client = reqwest::Client::new();
    let url = master.url("/api/v1/scheduler");
    let post = |body: &'static str, ct: Option<&'static str>| {
        let mut req = client.post(&url).body(body);
        if let Some(ct) = ct {
            req = req.header("Content-Type", ct);
        }
        req.send()
    };
    let r = post("{not json", Some("application/json")).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post("{}", None).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap(),
        "Expecting 'Content-Type' to be present"
    );
    let r = post("{}", Some("application/x-protobuf")).await.unwrap();
    assert_eq!(r.status(), 415);
    let r = post(
        r#"{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}"#,
        Some("application/json"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("framework_info.user"));

    let mut s = Scheduler::subscribe(master.addr, framework("bad")).await;
    // A call without the stream id header is refused.
    let r = client
        .post(&url)
        .header("Content-Type", "application/json")
        .json(&json!({"type": "REVIVE", "framework_id": {"value": s.framework_id}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Mesos-Stream-Id"));
    // An ACCEPT that asks for more than the offer holds launches nothing: TASK_ERROR.
    let offer = s.offer().await;
    let greedy = task("greedy", &offer, "true", 64.0, &[]);
    assert_eq!(s.call(launch(&offer, vec![greedy])).await.0, 202);
    let st = s.until("greedy", "TASK_ERROR").await;
    assert_eq!(st["reason"], "REASON_TASK_INVALID");
    // A port outside the offer is refused the same way.
    let offer = s.offer().await;
    let stray = task("stray", &offer, "true", 0.1, &[(40000, 40000)]);
    assert_eq!(s.call(launch(&offer, vec![stray])).await.0, 202);
    s.until("stray", "TASK_ERROR").await;
    let st = get(&agent, "/state").await;
    assert!(sandbox_of(&st, "greedy").is_none() && sandbox_of(&st, "stray").is_none());
    let (code, body) = s.call(json!({"type": "BOGUS"})).await;
    assert_eq!(code, 400, "{body}");
    agent.stop().await;
    master.stop().await;
}

#[tokio::test]
async fn a_restarted_agent_reattaches_to_its_running_task() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let agent_addr = agent.addr;
    let mut s = Scheduler::subscribe(master.addr, framework("restart")).await;
    let offer = s.offer().await;
    let t = task("survivor", &offer, "exec sleep 600", 0.1, &[]);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("survivor", "TASK_RUNNING").await;
    let agent_id = running["agent_id"]["value"].as_str().unwrap().to_string();
    agent.stop_keeping_tasks().await;
    let agent = agent_on(agent_addr, master.addr, dir.path().into()).await;
    eventually(Duration::from_secs(10), "agent re-registered", || async {
        let slaves = get(&master, "/master/slaves").await;
        let back = slaves["slaves"].as_array()?.iter().any(|a| {
            a["id"] == agent_id.as_str()
                && a["active"] == true
                && a["reregistered_time"].is_number()
        });
        back.then_some(())
    })
    .await;
    assert_eq!(get(&agent, "/state").await["id"], agent_id.as_str());
    s.call(json!({"type": "RECONCILE", "reconcile": {"tasks": []}}))
        .await;
    let st = s.until("survivor", "TASK_RUNNING").await;
    assert_eq!(st["reason"], "REASON_RECONCILIATION");
    let (code, _) = s
        .call(json!({"type": "KILL", "kill": {"task_id": {"value": "survivor"}}}))
        .await;
    assert_eq!(code, 202);
    s.until("survivor", "TASK_KILLED").await;
    agent.stop().await;
    master.stop().await;
}
