//! Health checks the agent runs for command tasks (`TaskInfo.health_check`), as Mesos'
//! command executor does: verdicts arrive as TASK_RUNNING updates with `healthy`, a task
//! failing its check too often is killed, COMMAND checks of a task in an image run inside
//! its container.

use std::time::Duration;

use dcos_testkit::loopback;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::containers::{
    assert_nothing_left, container_id, image_task, require_containers, Cluster,
};
use crate::harness::{agent, eventually, framework, get, launch, task, Scheduler};

const REASON: &str = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED";

/// A check with short timings: probed at once, every 200 ms.
fn check(kind: Value, grace: f64, failures: u32, timeout: f64) -> Value {
    let mut check = kind;
    check["delay_seconds"] = json!(0.0);
    check["interval_seconds"] = json!(0.2);
    check["timeout_seconds"] = json!(timeout);
    check["grace_period_seconds"] = json!(grace);
    check["consecutive_failures"] = json!(failures);
    check
}

fn command(value: &str) -> Value {
    json!({"type": "COMMAND", "command": {"value": value}})
}

/// The next update of `task` that carries a health verdict.
async fn next_health(s: &mut Scheduler, task: &str) -> Value {
    loop {
        let status = s.update(task).await;
        if status.get("healthy").is_some() {
            return status;
        }
        let state = status["state"].as_str().unwrap_or_default();
        assert!(
            ["TASK_STARTING", "TASK_RUNNING"].contains(&state),
            "{status}"
        );
    }
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

#[tokio::test]
async fn a_passing_command_check_reports_healthy_in_updates_and_state() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let mut s = Scheduler::subscribe(master.addr, framework("health")).await;
    let offer = s.offer().await;
    let mut t = task("ok", &offer, "touch ready; sleep 30", 0.1, &[]);
    // The task's environment and sandbox are the check's.
    let cmd = r#"test -e ready && test "$MESOS_TASK_ID" = ok"#;
    t["health_check"] = check(command(cmd), 10.0, 3, 5.0);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    s.until("ok", "TASK_RUNNING").await;
    let status = next_health(&mut s, "ok").await;
    assert_eq!(
        (&status["state"], &status["healthy"], &status["reason"]),
        (&json!("TASK_RUNNING"), &json!(true), &json!(REASON)),
        "{status}"
    );
    let state = get(&agent, "/state").await;
    let statuses = &state["frameworks"][0]["executors"][0]["tasks"][0]["statuses"];
    assert_eq!(statuses[0]["healthy"], true, "{state}");
    let kill = json!({"type": "KILL", "kill": {"task_id": {"value": "ok"}, "agent_id": offer["agent_id"]}});
    assert_eq!(s.call(kill).await.0, 202);
    let killed = s.until("ok", "TASK_KILLED").await;
    assert!(killed.get("healthy").is_none(), "{killed}");
    agent.stop().await;
}

#[tokio::test]
async fn a_failing_check_past_its_grace_period_kills_the_task() {
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let mut s = Scheduler::subscribe(master.addr, framework("health")).await;
    let offer = s.offer().await;
    let mut t = task("sick", &offer, "sleep 30", 0.1, &[]);
    // Every attempt times out; what it started must not outlive it.
    t["health_check"] = check(command("sleep 1234.5"), 1.0, 2, 0.3);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("sick", "TASK_RUNNING").await;
    let first = next_health(&mut s, "sick").await;
    assert_eq!(
        (&first["healthy"], &first["reason"]),
        (&json!(false), &json!(REASON))
    );
    let after = first["timestamp"].as_f64().unwrap() - running["timestamp"].as_f64().unwrap();
    assert!(
        after >= 1.0,
        "a failure within the grace period was reported ({after} s)"
    );
    let second = next_health(&mut s, "sick").await;
    assert_eq!(
        (&second["state"], &second["healthy"]),
        (&json!("TASK_RUNNING"), &json!(false))
    );
    s.until("sick", "TASK_KILLING").await;
    let killed = s.until("sick", "TASK_KILLED").await;
    assert_eq!(killed["healthy"], false, "{killed}");
    eventually(Duration::from_secs(5), "no check process left", || async {
        processes_with("sleep 1234.5").is_empty().then_some(())
    })
    .await;
    agent.stop().await;
}

/// Serves `200` for `/ok` and `503` for anything else, one request per connection.
async fn http_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let ok = buf[..n].starts_with(b"GET /ok ");
                let line = if ok {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let reply =
                    format!("HTTP/1.1 {line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn http_checks_pass_on_2xx_and_fail_otherwise() {
    let port = http_server().await;
    let master = loopback::master().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(master.addr, dir.path().into()).await;
    let mut s = Scheduler::subscribe(master.addr, framework("health")).await;
    let offer = s.offer().await;
    let http = |path: &str| json!({"type": "HTTP", "http": {"port": port, "path": path}});
    let mut up = task("up", &offer, "sleep 30", 0.1, &[]);
    up["health_check"] = check(http("/ok"), 0.0, 100, 2.0);
    let mut down = task("down", &offer, "sleep 30", 0.1, &[]);
    down["health_check"] = check(http("/bad"), 0.0, 100, 2.0);
    assert_eq!(s.call(launch(&offer, vec![up, down])).await.0, 202);
    // `up` reports once; `down` on every failure, so one comes after `up`'s too.
    let verdict = next_health(&mut s, "up").await;
    assert_eq!(verdict["healthy"], true, "{verdict}");
    let verdict = next_health(&mut s, "down").await;
    assert_eq!(verdict["healthy"], false, "{verdict}");
    agent.stop().await;
}

#[tokio::test]
async fn a_command_check_of_an_image_task_runs_inside_its_container() {
    require_containers();
    let c = Cluster::start().await;
    let mut s = Scheduler::subscribe(c.master.addr, framework("ucr-health")).await;
    let offer = s.offer().await;
    let mut t = image_task("img", &offer, "sleep 30", 64.0);
    // `/etc/added` exists only in the image, `FROM_IMAGE` only in its environment; the
    // check runs in the container's pid namespace (its own pid is in the container's
    // `/proc`) and starts in the sandbox.
    let cmd = r#"test -e /etc/added && test "$FROM_IMAGE" = yes && test -d /proc/$$ && test "$(pwd)" = /mnt/mesos/sandbox"#;
    t["health_check"] = check(command(cmd), 10.0, 3, 5.0);
    assert_eq!(s.call(launch(&offer, vec![t])).await.0, 202);
    let running = s.until("img", "TASK_RUNNING").await;
    let id = container_id(&running);
    let status = next_health(&mut s, "img").await;
    assert_eq!(status["healthy"], true, "{status}");
    let kill = json!({"type": "KILL", "kill": {"task_id": {"value": "img"}, "agent_id": offer["agent_id"]}});
    assert_eq!(s.call(kill).await.0, 202);
    s.until("img", "TASK_KILLED").await;
    assert_nothing_left(c.work_dir.path(), &id);
}
