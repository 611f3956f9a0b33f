use std::time::Duration;

use dcos_metronome::Clock;
use serde_json::json;

use crate::harness::{job, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_during_a_run_loses_neither_job_run_nor_history() {
    let mut env = Env::with(1, 2, Clock::system()).await;
    // Some history first.
    assert_eq!(
        env.send("POST", "/v1/jobs", Some(job("ha.quick", "true")))
            .await
            .0,
        201
    );
    let quick = env.run("ha.quick").await;
    assert!(
        env.finished("ha.quick", &quick, Duration::from_secs(30))
            .await
    );
    // An active run across the failover: it waits for a file the test creates.
    let flag = env.dir.path().join("go");
    let cmd = format!("while [ ! -e {} ]; do sleep 0.2; done", flag.display());
    assert_eq!(
        env.send("POST", "/v1/jobs", Some(job("ha.wait", &cmd)))
            .await
            .0,
        201
    );
    let run = env.run("ha.wait").await;
    env.eventually("the run active", Duration::from_secs(20), || async {
        let (_, r) = env.get(&format!("/v1/jobs/ha.wait/runs/{run}")).await;
        (r["status"] == "ACTIVE").then_some(())
    })
    .await;

    // Which one leads: the one that answers without proxying.
    let leader = {
        let r = env.client.get(env.url("/v1/jobs")).send().await.unwrap();
        match r.headers().get("x-leader").and_then(|v| v.to_str().ok()) {
            Some(l) => env
                .metronomes
                .iter()
                .position(|m| m.as_ref().is_some_and(|m| m.addr.to_string() == l))
                .unwrap(),
            None => env.metronomes.iter().position(Option::is_some).unwrap(),
        }
    };
    env.kill(leader).await;

    // The other takes over: the job, the active run (ACTIVE again once its task is
    // reconciled) and the history are there.
    env.eventually(
        "the new leader answers with the run ACTIVE",
        Duration::from_secs(30),
        || async {
            let (code, r) = env.get(&format!("/v1/jobs/ha.wait/runs/{run}")).await;
            (code == 200 && r["status"] == "ACTIVE").then_some(())
        },
    )
    .await;
    let (_, h) = env.get("/v1/jobs/ha.quick?embed=history").await;
    assert_eq!(
        h["history"]["successfulFinishedRuns"][0]["id"],
        json!(quick)
    );
    // The run's task is still the same, and finishes under the new leader.
    std::fs::write(&flag, b"").unwrap();
    assert!(env.finished("ha.wait", &run, Duration::from_secs(30)).await);
    let (_, j) = env.get("/v1/jobs/ha.wait?embed=history").await;
    assert_eq!(j["history"]["successfulFinishedRuns"][0]["id"], json!(run));
    assert_eq!(j["history"]["successCount"], 1);
    env.stop().await;
}
