//! What a hostile or careless client of the master must not be able to do.

use std::collections::HashSet;

use serde_json::json;

use dcos_testkit::loopback;

use crate::harness::{framework, Scheduler};

#[tokio::test]
async fn framework_ids_are_never_given_twice() {
    let master = loopback::master().await;
    let live = Scheduler::subscribe(master.addr, framework("stays")).await;
    let mut seen = HashSet::from([live.framework_id.clone()]);
    // More teardowns than the master keeps completed frameworks (50).
    for n in 0..60 {
        let s = Scheduler::subscribe(master.addr, framework(&format!("brief-{n}"))).await;
        assert!(
            seen.insert(s.framework_id.clone()),
            "framework id {} given twice",
            s.framework_id
        );
        assert_eq!(s.call(json!({"type": "TEARDOWN"})).await.0, 202);
    }
    let fresh = Scheduler::subscribe(master.addr, framework("fresh")).await;
    assert!(
        seen.insert(fresh.framework_id.clone()),
        "after 60 teardowns a new framework got the id {} of another",
        fresh.framework_id
    );
    // The framework that stayed still has its own id and is still the one subscribed.
    let (code, _) = live.call(json!({"type": "REVIVE"})).await;
    assert_eq!(code, 202);
    master.stop().await;
}

/// `SUBSCRIBE` on the master's agent API from a client bound to `from`.
async fn agent_subscribe(master: std::net::SocketAddr, from: &str, call: serde_json::Value) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(Some(from.parse().unwrap()))
        .build()
        .unwrap();
    let resp = client
        .post(format!(
            "http://{master}{}",
            dcos_mesos::protocol::AGENT_API_PATH
        ))
        .json(&call)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

#[tokio::test]
async fn a_fake_agent_cannot_take_a_live_agents_id_or_declare_another_address() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = crate::harness::agent(master.addr, dir.path().into()).await;
    let slaves = crate::harness::eventually(
        std::time::Duration::from_secs(10),
        "the agent registered",
        || async {
            let v = crate::harness::get(&master, "/master/slaves").await;
            (v["slaves"].as_array()?.len() == 1).then_some(v)
        },
    )
    .await;
    let id = slaves["slaves"][0]["id"].as_str().unwrap().to_string();
    let info = |host: &str| json!({"hostname": host, "port": 5999, "resources": []});
    // The live agent's id from another address.
    let hijack = json!({"type": "SUBSCRIBE", "agent_id": {"value": id}, "info": info("127.0.0.2")});
    assert_eq!(agent_subscribe(master.addr, "127.0.0.2", hijack).await, 403);
    // An address that is not the one it connects from (Admin Router would proxy there).
    let elsewhere = json!({"type": "SUBSCRIBE", "info": info("10.9.9.9")});
    assert_eq!(
        agent_subscribe(master.addr, "127.0.0.2", elsewhere).await,
        403
    );
    // The real agent is untouched: still the only one, active, at its own address.
    let after = crate::harness::get(&master, "/master/slaves").await;
    assert_eq!(after["slaves"].as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after["slaves"][0]["id"], json!(id));
    assert_eq!(after["slaves"][0]["active"], json!(true));
    assert_eq!(after["slaves"][0]["pid"], slaves["slaves"][0]["pid"]);
    agent.stop().await;
    master.stop().await;
}

#[tokio::test]
async fn an_agent_with_5000_tasks_re_registers() {
    let master = loopback::master().await;
    let tasks: Vec<serde_json::Value> = (0..5000)
        .map(|n| {
            json!({
                "framework": {"user": "root", "name": "big", "id": {"value": "fw-big"}},
                "task": {
                    "name": format!("task-{n}"),
                    "task_id": {"value": format!("big.task-{n:05}")},
                    "agent_id": {"value": "agent-big"},
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.001}}],
                    "command": {"value": "sleep 1000", "environment": {"variables": [
                        {"name": "PADDING", "value": "x".repeat(900)}
                    ]}},
                },
                "state": "TASK_RUNNING",
                "status": null,
            })
        })
        .collect();
    let call = json!({
        "type": "SUBSCRIBE",
        "agent_id": {"value": "agent-big"},
        "info": {"hostname": "127.0.0.3", "port": 5051, "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 64.0}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 65536.0}},
        ]},
        "tasks": tasks,
    });
    let body = serde_json::to_vec(&call).unwrap();
    assert!(
        body.len() > 4 << 20,
        "the re-registration is only {} bytes",
        body.len()
    );
    let client = reqwest::Client::builder()
        .local_address(Some("127.0.0.3".parse().unwrap()))
        .build()
        .unwrap();
    let stream = client
        .post(format!(
            "http://{}{}",
            master.addr,
            dcos_mesos::protocol::AGENT_API_PATH
        ))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200, "{:?}", stream.headers());
    let state = crate::harness::get(&master, "/master/state").await;
    let running = state["frameworks"][0]["tasks"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        running, 5000,
        "the master adopted {running} of the agent's 5000 tasks"
    );
    drop(stream);
    master.stop().await;
}

#[tokio::test]
async fn an_images_registry_password_never_shows_in_the_masters_state() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = crate::harness::agent(master.addr, dir.path().into()).await;
    let mut s = Scheduler::subscribe(master.addr, framework("secret-image")).await;
    let offer = s.offer().await;
    let mut t = crate::harness::task("private", &offer, "true", 0.1, &[]);
    // A registry on a closed loopback port: the pull fails here, on this machine.
    t["container"] = json!({"type": "MESOS", "mesos": {"image": {"type": "DOCKER",
        "docker": {"name": "127.0.0.1:1/private:1",
                   "credential": {"principal": "deployer", "secret": "hunter2-secret"}}}}});
    assert_eq!(s.call(crate::harness::launch(&offer, vec![t])).await.0, 202);
    s.until("private", "TASK_FAILED").await;
    for path in ["/master/state", "/master/tasks"] {
        let text = reqwest::get(format!("http://{}{path}", master.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("deployer"),
            "{path} lost the credential's principal"
        );
        assert!(
            !text.contains("hunter2-secret"),
            "{path} shows the registry password"
        );
    }
    agent.stop().await;
    master.stop().await;
}
