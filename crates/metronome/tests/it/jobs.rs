use std::time::Duration;

use serde_json::json;

use crate::harness::{job, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_echo_job_succeeds_and_appears_in_its_history() {
    let env = Env::start(1).await;
    let (code, created) = env
        .send("POST", "/v1/jobs", Some(job("hello.echo", "echo hello")))
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["run"]["maxLaunchDelay"], 3600);
    let (code, dup) = env
        .send("POST", "/v1/jobs", Some(job("hello.echo", "echo hello")))
        .await;
    assert_eq!(
        (code, dup),
        (409, json!({"message": "Job with this id already exists"}))
    );

    let run = env.run("hello.echo").await;
    assert_eq!(run.len(), 19, "{run}");
    // 200 while active (STARTING or ACTIVE, with its task), 404 once finished.
    let (code, active) = env.get(&format!("/v1/jobs/hello.echo/runs/{run}")).await;
    if code == 200 {
        assert_eq!(active["jobId"], "hello.echo");
        assert!(
            ["STARTING", "ACTIVE"].contains(&active["status"].as_str().unwrap()),
            "{active}"
        );
        assert_eq!(active["completedAt"], serde_json::Value::Null);
    }
    assert!(
        env.finished("hello.echo", &run, Duration::from_secs(30))
            .await
    );
    let (_, j) = env.get("/v1/jobs/hello.echo?embed=history&embed=historySummary&embed=activeRuns&embed=schedules").await;
    assert_eq!(j["history"]["successCount"], 1);
    assert_eq!(j["historySummary"]["successCount"], 1);
    assert_eq!(j["historySummary"]["failureCount"], 0);
    assert_eq!(j["activeRuns"], json!([]));
    assert_eq!(j["schedules"], json!([]));
    let (code, gone) = env.get(&format!("/v1/jobs/hello.echo/runs/{run}")).await;
    assert_eq!(code, 404);
    assert_eq!(
        gone,
        json!({"jobSpec": "hello.echo", "id": run, "message": "Job Run not found"})
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_with_on_failure_retries_until_its_deadline_and_fails() {
    let env = Env::start(1).await;
    let spec = json!({"id": "always.fails", "run": {"cmd": "exit 3", "cpus": 0.1, "mem": 32, "disk": 0,
        "restart": {"policy": "ON_FAILURE", "activeDeadlineSeconds": 4}}});
    let (code, body) = env.send("POST", "/v1/jobs", Some(spec)).await;
    assert_eq!(code, 201, "{body}");
    let run = env.run("always.fails").await;
    // Retried while within the deadline (about 1 s apart), then failed.
    let started = std::time::Instant::now();
    assert!(
        !env.finished("always.fails", &run, Duration::from_secs(30))
            .await
    );
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let (_, j) = env.get("/v1/jobs/always.fails?embed=historySummary").await;
    assert_eq!(j["historySummary"]["failureCount"], 1);
    let (_, m) = env.get("/v1/metrics").await;
    let launched = m["counters"]["dcos.metronome.task.launched"]["count"]
        .as_u64()
        .unwrap();
    assert!(launched >= 3, "{m}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_job_with_active_runs_needs_stop_current_job_runs() {
    let env = Env::start(1).await;
    env.send("POST", "/v1/jobs", Some(job("long.sleep", "sleep 300")))
        .await;
    let run = env.run("long.sleep").await;
    env.eventually("the run active", Duration::from_secs(20), || async {
        let (_, r) = env.get(&format!("/v1/jobs/long.sleep/runs/{run}")).await;
        (r["status"] == "ACTIVE").then_some(())
    })
    .await;
    let (code, body) = env.send("DELETE", "/v1/jobs/long.sleep", None).await;
    assert_eq!(code, 409);
    assert_eq!(
        body,
        json!({"message": "There are active job runs. Override with stopCurrentJobRuns=true"})
    );
    let (code, _) = env.get("/v1/jobs/long.sleep").await;
    assert_eq!(code, 200);
    let (code, body) = env
        .send(
            "DELETE",
            "/v1/jobs/long.sleep?stopCurrentJobRuns=true",
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["id"], "long.sleep");
    let (code, body) = env.get("/v1/jobs/long.sleep").await;
    assert_eq!(
        (code, body),
        (404, json!({"id": "long.sleep", "message": "Job not found"}))
    );
    // Its task is killed.
    let state_url = env.master.url("/master/state");
    env.eventually("the task killed", Duration::from_secs(20), || async {
        let s: serde_json::Value = env
            .client
            .get(&state_url)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let running = s["frameworks"]
            .as_array()?
            .iter()
            .flat_map(|f| f["tasks"].as_array().cloned().unwrap_or_default())
            .filter(|t| t["state"] == "TASK_RUNNING")
            .count();
        (running == 0).then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_get_422_with_paths_and_change_nothing() {
    let env = Env::start(0).await;
    let cases = [
        (
            json!({"id": "Bad_Id", "run": {"cmd": "x", "cpus": 1, "mem": 32, "disk": 0}}),
            "/id",
        ),
        (
            json!({"id": "neg", "run": {"cmd": "x", "cpus": -1, "mem": 32, "disk": 0}}),
            "/run/cpus",
        ),
        (
            json!({"id": "unknown", "run": {"cmd": "x", "cpus": 1, "mem": 32, "disk": 0}, "color": 1}),
            "",
        ),
    ];
    for (spec, path) in cases {
        let (code, body) = env.send("POST", "/v1/jobs", Some(spec)).await;
        assert_eq!(code, 422, "{body}");
        assert_eq!(body["message"], "Object is not valid");
        assert_eq!(body["details"][0]["path"], path, "{body}");
    }
    let bad_cron = json!({"id": "cron.bad", "schedules": [{"id": "every", "cron": "not a cron"}],
        "run": {"cmd": "x", "cpus": 1, "mem": 32, "disk": 0}});
    let (code, body) = env.send("POST", "/v0/scheduled-jobs", Some(bad_cron)).await;
    assert_eq!(code, 422);
    assert_eq!(body["details"][0]["path"], "/schedules(0)/cron");
    let bad_zone = json!({"id": "zone.bad", "schedules": [{"id": "every", "cron": "* * * * *", "timezone": "Mars/Base"}],
        "run": {"cmd": "x", "cpus": 1, "mem": 32, "disk": 0}});
    let (code, body) = env.send("POST", "/v0/scheduled-jobs", Some(bad_zone)).await;
    assert_eq!(code, 422);
    assert_eq!(body["details"][0]["path"], "/schedules(0)/timezone");
    let (_, jobs) = env.get("/v1/jobs").await;
    assert_eq!(jobs, json!([]));

    // A schedule on an existing job, and PUT with bad values, change nothing either.
    env.send("POST", "/v1/jobs", Some(job("kept", "true")))
        .await;
    let (code, _) = env
        .send(
            "POST",
            "/v1/jobs/kept/schedules",
            Some(json!({"id": "every", "cron": "61 * * * *"})),
        )
        .await;
    assert_eq!(code, 422);
    let (code, _) = env
        .send(
            "PUT",
            "/v1/jobs/kept",
            Some(json!({"id": "kept", "run": {"cmd": "x", "cpus": 0, "mem": 32, "disk": 0}})),
        )
        .await;
    assert_eq!(code, 422);
    let (_, kept) = env.get("/v1/jobs/kept?embed=schedules").await;
    assert_eq!(kept["run"]["cmd"], "true");
    assert_eq!(kept["schedules"], json!([]));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_as_metronome_does() {
    let env = Env::start(0).await;
    let r = env.client.get(env.url("/ping")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "pong");
    let (_, info) = env.get("/info").await;
    assert_eq!(info, json!({"version": "0.4.5", "libVersion": "1.3.13"}));
    let (code, body) = env.get("/v1/nothing").await;
    assert_eq!(
        (code, body),
        (
            404,
            json!({"message": "Unknown route.", "requestPath": "/v1/nothing"})
        )
    );
    let (code, _) = env.send("POST", "/v1/jobs/x", None).await;
    assert_eq!(code, 404);
    let (code, _) = env.get("/v1/jobs?embed=tasks").await;
    assert_eq!(code, 400);
    let (code, m) = env.get("/v1/metrics").await;
    assert_eq!(code, 200);
    assert!(m["counters"].is_object());
    let (_, q) = env.get("/v1/queue").await;
    assert_eq!(q, json!([]));
    // Runs of an unknown job: an empty list, as Metronome answers; a run of one: 404.
    assert_eq!(env.get("/v1/jobs/nope/runs").await, (200, json!([])));
    let (code, body) = env.get("/v1/jobs/nope/runs/20240101000000abcde").await;
    assert_eq!(
        (code, body),
        (
            404,
            json!({"jobSpec": "nope", "id": "20240101000000abcde", "message": "Job Run not found"})
        )
    );
    let (code, body) = env.send("POST", "/v1/jobs/nope/runs", None).await;
    assert_eq!(
        (code, body),
        (404, json!({"id": "nope", "message": "Job not found"}))
    );
    let (code, body) = env.get("/v1/jobs/Bad_Id").await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["message"], "Not a valid id: Bad_Id");

    // Schedules CRUD.
    env.send("POST", "/v1/jobs", Some(job("sched.crud", "true")))
        .await;
    let s = json!({"id": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin"});
    let (code, created) = env
        .send("POST", "/v1/jobs/sched.crud/schedules", Some(s.clone()))
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["startingDeadlineSeconds"], 900);
    assert_eq!(created["concurrencyPolicy"], "ALLOW");
    assert!(created["nextRunAt"].as_str().unwrap().ends_with("+0000"));
    let (code, _) = env
        .send("POST", "/v1/jobs/sched.crud/schedules", Some(s))
        .await;
    assert_eq!(code, 409);
    let (code, got) = env.get("/v1/jobs/sched.crud/schedules/nightly").await;
    assert_eq!((code, got["cron"].clone()), (200, json!("0 3 * * *")));
    let (code, put) = env
        .send(
            "PUT",
            "/v1/jobs/sched.crud/schedules/nightly",
            Some(json!({"id": "nightly", "cron": "0 4 * * *", "enabled": false})),
        )
        .await;
    assert_eq!(
        (code, put["cron"].clone(), put["enabled"].clone()),
        (200, json!("0 4 * * *"), json!(false))
    );
    let (code, body) = env.get("/v1/jobs/sched.crud/schedules/other").await;
    assert_eq!(
        (code, body),
        (404, json!({"id": "other", "message": "Schedule not found"}))
    );
    let (code, _) = env
        .send("DELETE", "/v1/jobs/sched.crud/schedules/nightly", None)
        .await;
    assert_eq!(code, 200);
    let (_, list) = env.get("/v1/jobs/sched.crud/schedules").await;
    assert_eq!(list, json!([]));
    env.stop().await;
}
