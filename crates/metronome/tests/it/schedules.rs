use std::time::{Duration, Instant};

use dcos_metronome::Clock;
use serde_json::json;

use crate::harness::{at, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_minute_fires_within_two_seconds_of_each_boundary() {
    let clock = Clock::manual(at("2024-05-01T10:00:30Z"));
    let env = Env::with(1, 1, clock.clone()).await;
    let spec = json!({"id": "minutely", "schedules": [{"id": "every-minute", "cron": "* * * * *"}],
        "run": {"cmd": "true", "cpus": 0.1, "mem": 32, "disk": 0}});
    let (code, body) = env.send("POST", "/v0/scheduled-jobs", Some(spec)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["schedules"][0]["nextRunAt"],
        "2024-05-01T10:01:00.000+0000"
    );
    let (_, none) = env.get("/v1/jobs/minutely/runs").await;
    assert_eq!(none, json!([]));
    for minute in 1..=3 {
        let boundary = at(&format!("2024-05-01T10:0{minute}:00Z"));
        clock.set(boundary);
        let moved = Instant::now();
        let created = env
            .eventually(
                &format!("a run at minute {minute}"),
                Duration::from_secs(5),
                || async {
                    let (_, j) = env
                        .get("/v1/jobs/minutely?embed=activeRuns&embed=history")
                        .await;
                    let mut all: Vec<String> = j["activeRuns"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| r["createdAt"].as_str().unwrap_or_default().to_string())
                        .collect();
                    all.extend(
                        j["history"]["successfulFinishedRuns"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|r| r["createdAt"].as_str().unwrap_or_default().to_string()),
                    );
                    (all.len() >= minute).then_some(all)
                },
            )
            .await;
        // Seen within 2 s of the boundary in real time, stamped within 2 s of it by the clock.
        assert!(
            moved.elapsed() < Duration::from_secs(2),
            "minute {minute}: {:?}",
            moved.elapsed()
        );
        let newest = created
            .iter()
            .filter_map(|c| dcos_metronome::api::parse_timestamp(c))
            .max()
            .unwrap();
        let lag = newest.signed_duration_since(boundary);
        assert!(
            lag >= chrono::Duration::zero() && lag < chrono::Duration::seconds(2),
            "{created:?}"
        );
        assert_eq!(created.len(), minute, "{created:?}");
    }
    let (_, m) = env.get("/v1/metrics").await;
    assert_eq!(m["counters"]["dcos.metronome.schedule.fired"]["count"], 3);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_times_missed_while_down_start_within_the_deadline_else_are_skipped() {
    let clock = Clock::manual(at("2024-05-01T10:00:30Z"));
    let mut env = Env::with(1, 1, clock.clone()).await;
    let spec = json!({"id": "catchup", "schedules": [{"id": "every-minute", "cron": "* * * * *", "startingDeadlineSeconds": 60}],
        "run": {"cmd": "true", "cpus": 0.1, "mem": 32, "disk": 0}});
    assert_eq!(
        env.send("POST", "/v0/scheduled-jobs", Some(spec)).await.0,
        201
    );
    env.kill(0).await;
    // Down from 10:00:30 to 10:05:20: 10:01..10:05 missed; 10:05 is 20 s late, within 60 s.
    clock.set(at("2024-05-01T10:05:20Z"));
    env.start_metronome().await;
    let runs = env
        .eventually("the caught-up run", Duration::from_secs(15), || async {
            let (_, j) = env
                .get("/v1/jobs/catchup?embed=activeRuns&embed=history")
                .await;
            let n = j["activeRuns"].as_array().map_or(0, Vec::len)
                + j["history"]["successfulFinishedRuns"]
                    .as_array()
                    .map_or(0, Vec::len);
            (n >= 1).then_some(j)
        })
        .await;
    let (_, m) = env.get("/v1/metrics").await;
    assert_eq!(
        m["counters"]["dcos.metronome.schedule.missed"]["count"], 4,
        "{runs}"
    );
    assert_eq!(m["counters"]["dcos.metronome.schedule.fired"]["count"], 1);
    env.stop().await;
}
