//! Mesos-side health checks (COMMAND, MESOS_HTTP): Marathon hands them to the agent in the
//! task's `health_check` and takes their verdicts from status updates.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::Env;

/// Posts `app` and waits until `/v2/apps/<id>` says `field` is 1; the app's JSON then.
async fn until_counted(env: &Env, app: Value, field: &str) -> Value {
    let id = app["id"].as_str().unwrap().to_string();
    let (code, body) = env.send("POST", "/v2/apps", Some(app)).await;
    assert_eq!(code, 201, "{body}");
    let what = format!("{id} has {field} 1");
    env.eventually(&what, Duration::from_secs(30), || async {
        let (_, v) = env.get(&format!("/v2/apps{id}")).await;
        (v["app"][field] == 1).then_some(v["app"].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_a_command_check_becomes_healthy_and_deploys() {
    let env = Env::start(1).await;
    let app = json!({
        "id": "/cmd-check",
        "cmd": "touch ready; exec sleep 100",
        "cpus": 0.1, "mem": 32,
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "test -e ready"},
            "delaySeconds": 0, "intervalSeconds": 1, "gracePeriodSeconds": 30, "timeoutSeconds": 5}]
    });
    let app = until_counted(&env, app, "tasksHealthy").await;
    let result = &app["tasks"][0]["healthCheckResults"][0];
    assert_eq!(result["alive"], true, "{app}");
    assert!(result["firstSuccess"].is_string(), "{app}");
    // The deployment waited for the agent's verdict and is done.
    env.eventually("the deployment done", Duration::from_secs(10), || async {
        let (_, d) = env.get("/v2/deployments").await;
        d.as_array().is_some_and(|d| d.is_empty()).then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesos_http_check_is_probed_by_the_agent() {
    let env = Env::start(1).await;
    let app = json!({
        "id": "/mesos-http",
        "cmd": "exec python3 -m http.server $PORT0 --bind 127.0.0.1",
        "cpus": 0.1, "mem": 32,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0,
            "delaySeconds": 0, "intervalSeconds": 1, "gracePeriodSeconds": 30, "timeoutSeconds": 2}]
    });
    let app = until_counted(&env, app, "tasksHealthy").await;
    assert_eq!(
        app["tasks"][0]["healthCheckResults"][0]["alive"], true,
        "{app}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_check_makes_the_task_unhealthy() {
    let env = Env::start(1).await;
    let app = json!({
        "id": "/sick",
        "cmd": "exec sleep 100",
        "cpus": 0.1, "mem": 32,
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "echo no; exit 1"},
            "delaySeconds": 0, "intervalSeconds": 1, "gracePeriodSeconds": 0,
            "timeoutSeconds": 5, "maxConsecutiveFailures": 100}]
    });
    let app = until_counted(&env, app, "tasksUnhealthy").await;
    assert_eq!(app["tasksHealthy"], 0, "{app}");
    assert_eq!(
        app["tasks"][0]["healthCheckResults"][0]["alive"], false,
        "{app}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mesos_tcp_checks_are_refused() {
    let env = Env::start(0).await;
    let check = json!({"protocol": "MESOS_TCP", "portIndex": 0});
    let app = json!({"id": "/two", "cmd": "sleep 9", "portDefinitions": [{"port": 0}],
        "healthChecks": [check, check]});
    let (code, body) = env.send("POST", "/v2/apps", Some(app)).await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body.to_string().contains("at most one Mesos health check"),
        "{body}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_two_command_checks_becomes_healthy() {
    let env = Env::start(1).await;
    let check = |cmd: &str| {
        json!({"protocol": "COMMAND", "command": {"value": cmd}, "delaySeconds": 0,
            "intervalSeconds": 1, "gracePeriodSeconds": 30, "timeoutSeconds": 0})
    };
    let app = json!({
        "id": "/two-checks", "cmd": "touch ready; exec sleep 100", "cpus": 0.1, "mem": 32,
        "healthChecks": [check("test -e ready"), check("true")],
    });
    let app = until_counted(&env, app, "tasksHealthy").await;
    let results = app["tasks"][0]["healthCheckResults"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{app}");
    assert!(results.iter().all(|r| r["alive"] == true), "{app}");
    env.stop().await;
}
