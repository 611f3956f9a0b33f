//! Jobs: Metronome's runs started per second on simulated agents, and its schedules'
//! fire-time lag against the cron instant.
//!
//! One process holds it all on loopback: a Mesos master (the test kit's in-process master),
//! simulated agents (tasks RUNNING at once), and Metronome with its own store file on the
//! system clock. Three measurements, one after the other:
//!
//! 1. The peer in the same run: a minimal framework with no state of its own launches `runs`
//!    tasks as fast as offers come (as many per offer as fit), and is torn down. It bounds
//!    what Metronome could reach on this master and these agents.
//! 2. Metronome: `runs` one-off jobs are created, then one run of each is started
//!    (`POST /v1/jobs/{id}/runs`, 32 at a time); the time from the first POST to the last
//!    run ACTIVE (its task RUNNING) gives runs started per second.
//! 3. `scheduled` jobs with the schedule `* * * * *` are created; at the next minute
//!    boundary each fires: the lag from the boundary to each run's `createdAt`, and to its
//!    run being seen ACTIVE through the API.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use dcos_mesos::resources::Resources;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{percentile, Args, Kind, Param, Scenario};

const TASK_CPUS: f64 = 0.01;
const TASK_MEM: f64 = 32.0;
const CALLS_IN_FLIGHT: usize = 32;
const GIVE_UP: Duration = Duration::from_secs(300);

const PARAMS: &[Param] = &[
    Param {
        key: "agents",
        kind: Kind::Num,
        full: "20",
        tiny: "2",
        help: "simulated agents",
    },
    Param {
        key: "runs",
        kind: Kind::Num,
        full: "1000",
        tiny: "50",
        help: "one-off jobs, one run each",
    },
    Param {
        key: "scheduled",
        kind: Kind::Num,
        full: "100",
        tiny: "5",
        help: "jobs scheduled `* * * * *`, fired at one minute boundary",
    },
];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "jobs",
    about: "Metronome runs started per second on simulated agents; schedule fire-time lag",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

async fn run(args: Args) -> anyhow::Result<Value> {
    let (agents, runs, scheduled) = (args.num("agents"), args.num("runs"), args.num("scheduled"));
    let master = dcos_testkit::loopback::master_with(Duration::from_millis(100)).await;
    // Room for every task at once, on every agent.
    let per_agent = (runs.max(scheduled) as f64 / agents.max(1) as f64).ceil() + 1.0;
    let resources = Resources {
        cpus: per_agent * TASK_CPUS * 2.0,
        mem: per_agent * TASK_MEM * 2.0,
        disk: 1024.0,
        ..Resources::default()
    };
    let spec = crate::simulate::Spec::new(master.addr, resources, Duration::ZERO);
    let sim = crate::simulate::start(spec, agents).await?;

    let peer = runs as f64
        / crate::launch::bare_framework(&reqwest::Client::new(), master.addr, runs).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let dir = tempfile::tempdir()?;
    let store = dcos_store::Embedded::open(dir.path().join("metronome.redb"))?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = http.local_addr()?;
    let stop = CancellationToken::new();
    let config = dcos_metronome::Config {
        listen: addr,
        https: None,
        libprocess: None,
        masters: vec![master.addr],
        work_dir: dir.path().join("metronome"),
        store: dcos_store::Location::Embedded(dir.path().join("metronome.redb")),
        framework_name: "metronome".into(),
        ca_dir: None,
        credentials: None,
        verify_tokens: None,
    };
    let session = dcos_store::AnyStore::Embedded(store.session());
    let s = stop.clone();
    let metronome = tokio::spawn(async move {
        let listeners = dcos_metronome::Listeners {
            http,
            https: None,
            libprocess: None,
        };
        dcos_metronome::serve_with(
            listeners,
            config,
            session,
            dcos_metronome::Clock::system(),
            s,
        )
        .await
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://{addr}");
    wait_ready(&client, &base).await?;

    let started = start_runs(&client, &base, runs).await?;
    let lag = fire_lag(&client, &base, scheduled).await?;

    stop.cancel();
    let _ = metronome.await;
    sim.stop().await;
    master.stop().await;
    let ratio =
        started["runs_per_second"].as_f64().unwrap_or(0.0) / peer.max(f64::MIN_POSITIVE) * 1.0;
    Ok(json!({
        "agents": agents,
        "runs": runs,
        "scheduled": scheduled,
        "metronome": started,
        "minimal_framework": {"tasks_per_second": peer},
        "ratio_to_minimal_framework": ratio,
        "schedule": lag,
    }))
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/v1/jobs")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < until, "Metronome did not lead within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn job(id: &str) -> Value {
    json!({"id": id, "run": {"cmd": "sleep 3600", "cpus": TASK_CPUS, "mem": TASK_MEM, "disk": 0}})
}

/// Creates `n` jobs, starts one run of each, and times the runs to ACTIVE.
async fn start_runs(client: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<Value> {
    let ids: Vec<String> = (0..n).map(|i| format!("bench.once-{i}")).collect();
    let each = |path: fn(&str) -> String, body: bool| {
        let ids = ids.clone();
        async move {
            futures::stream::iter(ids)
                .map(|id| {
                    let body = body.then(|| job(&id));
                    post(client.clone(), format!("{base}{}", path(&id)), body)
                })
                .buffer_unordered(CALLS_IN_FLIGHT)
                .collect::<Vec<anyhow::Result<()>>>()
                .await
                .into_iter()
                .collect::<anyhow::Result<()>>()
        }
    };
    each(|_| "/v1/jobs".into(), true).await?;
    let started = Instant::now();
    each(|id| format!("/v1/jobs/{id}/runs"), false).await?;
    let posted = started.elapsed().as_secs_f64();
    loop {
        let jobs: Value = client
            .get(format!("{base}/v1/jobs?embed=activeRuns"))
            .send()
            .await?
            .json()
            .await?;
        let active = jobs
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|j| j["activeRuns"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["status"] == "ACTIVE")
            .count();
        if active >= n {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < GIVE_UP,
            "{active} of {n} runs ACTIVE within {GIVE_UP:?}"
        );
        // The list of every job is large: look a few times a second, no more.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all = started.elapsed().as_secs_f64();
    Ok(json!({
        "posts_secs": posted,
        "all_active_secs": all,
        "runs_per_second": n as f64 / all,
    }))
}

/// One POST that must answer 201.
async fn post(client: reqwest::Client, url: String, body: Option<Value>) -> anyhow::Result<()> {
    let mut req = client.post(&url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    anyhow::ensure!(r.status().as_u16() == 201, "POST {url}: {}", r.status());
    Ok(())
}

/// Creates `n` minutely jobs and measures the lag of their runs at the next boundary.
async fn fire_lag(client: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<Value> {
    // Far enough from the boundary that every job exists before it.
    let now = Utc::now();
    if now.second() >= 50 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - now.second()))).await;
    }
    for i in 0..n {
        let spec = json!({"id": format!("bench.cron-{i}"),
            "schedules": [{"id": "every-minute", "cron": "* * * * *"}],
            "run": {"cmd": "sleep 3600", "cpus": TASK_CPUS, "mem": TASK_MEM, "disk": 0}});
        let r = client
            .post(format!("{base}/v0/scheduled-jobs"))
            .json(&spec)
            .send()
            .await?;
        anyhow::ensure!(
            r.status().as_u16() == 201,
            "creating a scheduled job: {}",
            r.status()
        );
    }
    let now = Utc::now();
    let boundary = (now + chrono::Duration::seconds(60 - i64::from(now.second())))
        .with_nanosecond(0)
        .unwrap_or(now);
    let mut created_ms = Vec::new();
    let mut active_ms = Vec::new();
    let mut seen = HashSet::new();
    let until = Instant::now() + Duration::from_secs(90);
    while seen.len() < n {
        anyhow::ensure!(
            Instant::now() < until,
            "{} of {n} scheduled runs ACTIVE",
            seen.len()
        );
        let jobs: Value = client
            .get(format!("{base}/v1/jobs?embed=activeRuns"))
            .send()
            .await?
            .json()
            .await?;
        let at = Utc::now();
        for j in jobs.as_array().into_iter().flatten() {
            if !j["id"]
                .as_str()
                .unwrap_or_default()
                .starts_with("bench.cron-")
            {
                continue;
            }
            for r in j["activeRuns"].as_array().into_iter().flatten() {
                let Some(created) = r["createdAt"]
                    .as_str()
                    .and_then(dcos_metronome::api::parse_timestamp)
                else {
                    continue;
                };
                if created < boundary || r["status"] != "ACTIVE" {
                    continue;
                }
                if seen.insert(r["id"].as_str().unwrap_or_default().to_string()) {
                    created_ms.push(ms(created, boundary));
                    active_ms.push(ms(at, boundary));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    created_ms.sort_by(f64::total_cmp);
    active_ms.sort_by(f64::total_cmp);
    Ok(json!({
        "fire_time": boundary.to_rfc3339(),
        "created_lag_p50_ms": percentile(&created_ms, 0.5),
        "created_lag_p99_ms": percentile(&created_ms, 0.99),
        "active_lag_p50_ms": percentile(&active_ms, 0.5),
        "active_lag_p99_ms": percentile(&active_ms, 0.99),
    }))
}

fn ms(t: DateTime<Utc>, from: DateTime<Utc>) -> f64 {
    t.signed_duration_since(from)
        .num_microseconds()
        .unwrap_or(0) as f64
        / 1000.0
}

fn section(doc: &Value) -> String {
    use crate::report::{heading, num, ratio, table};
    let f = &doc["figures"];
    let mut out = heading(
        "Jobs: Metronome runs started per second; schedule fire-time lag",
        doc,
    );
    out.push_str(
        "Release build, one process on loopback: the test kit's in-process Mesos master, simulated agents \
         (tasks RUNNING at once) and Metronome with its own store file. The peer in the same run \
         is a minimal framework with no state launching as many tasks on the same master and \
         agents as fast as offers come (torn down first). Metronome's figure is from the first \
         `POST /v1/jobs/{id}/runs` (one run of each of `runs` one-off jobs, 32 requests at a \
         time) to the last run ACTIVE. The lag is from a minute boundary to the `createdAt` of \
         each run of `scheduled` jobs with `* * * * *`, and to the run seen ACTIVE through the \
         API (the issue's limit: 2 s). `createdAt` has millisecond resolution; the ACTIVE time is \
         that of the first poll of the job list (every 20 ms plus its own time) that shows the \
         run, so runs seen by one poll share it.\n\n",
    );
    let m = &f["metronome"];
    out.push_str(&table(
        &[
            "agents",
            "runs",
            "all ACTIVE (s)",
            "runs/s",
            "minimal framework tasks/s (same run)",
            "ratio",
        ],
        &[vec![
            num(&f["agents"], 0),
            num(&f["runs"], 0),
            num(&m["all_active_secs"], 2),
            num(&m["runs_per_second"], 0),
            num(&f["minimal_framework"]["tasks_per_second"], 0),
            ratio(&f["ratio_to_minimal_framework"]),
        ]],
    ));
    let s = &f["schedule"];
    out.push('\n');
    out.push_str(&table(
        &[
            "scheduled jobs",
            "createdAt lag p50 (ms)",
            "p99 (ms)",
            "ACTIVE lag p50 (ms)",
            "p99 (ms)",
        ],
        &[vec![
            num(&f["scheduled"], 0),
            num(&s["created_lag_p50_ms"], 1),
            num(&s["created_lag_p99_ms"], 1),
            num(&s["active_lag_p50_ms"], 0),
            num(&s["active_lag_p99_ms"], 0),
        ]],
    ));
    out
}
