//! The executor HTTP API's edges, without a client library: bad calls, an executor that
//! dies, and a kill for a task its executor never received.

use serde_json::{json, Value};

use dcos_testkit::loopback;

use crate::harness::{agent, framework, launch, task, Scheduler};

fn with_executor(mut task: Value, executor_id: &str, command: &str) -> Value {
    task["executor"] =
        json!({"executor_id": {"value": executor_id}, "command": {"value": command}});
    task.as_object_mut().unwrap().remove("command");
    task
}

async fn post(url: &str, content_type: Option<&str>, body: Value) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url).body(body.to_string());
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn bad_executor_calls_get_mesos_errors() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let url = agent.url("/api/v1/executor");
    let subscribe = json!({"type": "SUBSCRIBE", "framework_id": {"value": "nope"}, "executor_id": {"value": "e"}, "subscribe": {}});
    let (code, body) = post(&url, None, subscribe.clone()).await;
    assert_eq!(
        (code, body.as_str()),
        (400, "Expecting 'Content-Type' to be present")
    );
    let (code, _) = post(&url, Some("application/x-protobuf"), subscribe.clone()).await;
    assert_eq!(code, 415);
    let (code, body) = post(&url, Some("application/json"), subscribe).await;
    assert_eq!((code, body.as_str()), (400, "Framework cannot be found"));
    let (code, body) = post(
        &url,
        Some("application/json"),
        json!({"type": "UPDATE", "framework_id": {"value": "f"}}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body.contains("Expecting 'executor_id' to be present"),
        "{body}"
    );
    let (code, body) = post(&url, Some("application/json"), json!([1])).await;
    assert_eq!(code, 400, "{body}");
    agent.stop().await;
    master.stop().await;
}

#[tokio::test]
async fn tasks_end_with_their_executor_and_undelivered_tasks_are_killed_by_the_agent() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let mut s = Scheduler::subscribe(master.addr, framework("executors")).await;
    let offer = s.offer().await;
    // An executor that exits at once takes its task with it.
    let dying = with_executor(task("dying", &offer, "", 0.1, &[]), "quitter", "exit 3");
    // One that never subscribes keeps its task staged; a kill is answered by the agent.
    let waiting = with_executor(task("waiting", &offer, "", 0.1, &[]), "mute", "sleep 30");
    assert_eq!(s.call(launch(&offer, vec![dying, waiting])).await.0, 202);
    let failed = s.until("dying", "TASK_FAILED").await;
    assert_eq!(failed["reason"], "REASON_EXECUTOR_TERMINATED");
    assert_eq!(failed["source"], "SOURCE_AGENT");
    let (code, _) = s
        .call(json!({"type": "KILL", "kill": {"task_id": {"value": "waiting"}}}))
        .await;
    assert_eq!(code, 202);
    let killed = s.until("waiting", "TASK_KILLED").await;
    assert_eq!(killed["source"], "SOURCE_AGENT");
    // The mute executor is shut down with its framework.
    assert_eq!(s.call(json!({"type": "TEARDOWN"})).await.0, 202);
    agent.stop().await;
    master.stop().await;
}
