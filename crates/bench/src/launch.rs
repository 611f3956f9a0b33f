//! Launch: `POST /v2/apps` to every instance TASK_RUNNING, on simulated agents.
//!
//! For each `AGENTSxINSTANCES` run: a fresh master node (`dcos node run --role master`,
//! every unit its own process) on its own loopback address, and that many simulated agents
//! (`dcos-bench simulate-agents`, tasks RUNNING at once). Two launches of the same size,
//! one after the other on the same node:
//!
//! 1. The peer in the same run: a minimal framework in this process, with no state of its
//!    own, that launches the instances as fast as offers come (as many per offer as fit).
//!    It bounds what Marathon could reach on this master and these agents. It is torn down
//!    (the master kills its tasks) before Marathon's launch.
//! 2. Marathon: one app of that many instances (`sleep 3600`, 0.01 CPU, 1 MB, no ports);
//!    the time from the POST to the last TASK_RUNNING Marathon reports, and each
//!    instance's latency from the POST to its `startedAt`.
//!
//! Then `/master/state` is fetched once at that size: its time to the first byte, the
//! whole time, and its size, read as a stream.

use std::time::{Duration, Instant, SystemTime};

use dcos_mesos::api::{CommandInfo, Filters, Id, Resource, Scalar, TaskInfo, TaskState};
use dcos_mesos::resources::Resources;
use dcos_mesos::scheduler::{self, Accept, Acknowledge, CallBody, Decline, Event, Operation};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::procfs;
use crate::rig::Rig;
use crate::{framework, percentile, Args, Kind, Param, Scenario};

/// The app every launch deploys.
pub(crate) const APP_ID: &str = "/bench-launch";

/// What one instance asks for.
const TASK_CPUS: f64 = 0.01;
const TASK_MEM: f64 = 1.0;

/// Calls the minimal framework has in flight at once, as Marathon.
const CALLS_IN_FLIGHT: usize = 32;

/// The longest any one launch may take.
const GIVE_UP: Duration = Duration::from_secs(540);

/// The minimal framework, the same-run peer of the launch and jobs scenarios: launches
/// `instances` tasks at `master` as offers come, and returns the seconds from its
/// subscription to the last TASK_RUNNING. Torn down afterwards (the master kills its tasks).
pub(crate) async fn bare_framework(
    client: &reqwest::Client,
    master: std::net::SocketAddr,
    instances: usize,
) -> anyhow::Result<f64> {
    let info = framework("bench-bare");
    let (conn, mut events, _) = scheduler::subscribe(client, master, &info).await?;
    let started = Instant::now();
    let (mut launched, mut running) = (0usize, 0usize);
    // Acknowledgements in flight at once, as Marathon bounds them: unbounded, 200,000 of
    // them would queue up at the master ahead of the offer answers.
    let acks = std::sync::Arc::new(tokio::sync::Semaphore::new(CALLS_IN_FLIGHT));
    while running < instances {
        anyhow::ensure!(
            started.elapsed() < GIVE_UP,
            "the minimal framework saw {running} of {instances} running within {GIVE_UP:?}"
        );
        let ev = tokio::time::timeout(Duration::from_secs(30), events.next()).await??;
        match ev {
            Event::Offers(offers) => {
                let mut calls = Vec::new();
                for offer in offers.offers {
                    let cpus = Resources::from_api(&offer.resources)
                        .map(|r| r.cpus)
                        .unwrap_or(0.0);
                    let fit = ((cpus / TASK_CPUS).floor() as usize).min(instances - launched);
                    let tasks: Vec<TaskInfo> = (launched..launched + fit)
                        .map(|i| bare_task(i, &offer.agent_id))
                        .collect();
                    launched += fit;
                    let call = if tasks.is_empty() {
                        CallBody::Decline(Decline {
                            offer_ids: vec![offer.id],
                            filters: Some(Filters {
                                refuse_seconds: Some(3600.0),
                            }),
                        })
                    } else {
                        CallBody::Accept(Accept {
                            offer_ids: vec![offer.id],
                            operations: vec![Operation::launch(tasks)],
                            filters: None,
                        })
                    };
                    calls.push(call);
                }
                futures::stream::iter(calls)
                    .map(|call| conn.call(call))
                    .buffer_unordered(CALLS_IN_FLIGHT)
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<Result<(), _>>()?;
            }
            Event::Update(update) => {
                if update.status.state == TaskState::Running {
                    running += 1;
                }
                if let Some(ack) = Acknowledge::of(&update.status) {
                    let permit = acks.clone().acquire_owned().await?;
                    let c = conn.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        c.call(CallBody::Acknowledge(ack)).await
                    });
                }
            }
            _ => {}
        }
    }
    let took = started.elapsed().as_secs_f64();
    conn.call(CallBody::Teardown).await?;
    Ok(took)
}

/// One of the minimal framework's tasks.
fn bare_task(i: usize, agent_id: &Id) -> TaskInfo {
    let scalar = |name: &str, value: f64| Resource {
        name: name.into(),
        kind: "SCALAR".into(),
        scalar: Some(Scalar { value }),
        ..Resource::default()
    };
    TaskInfo {
        name: format!("bare-{i}"),
        task_id: Id::new(format!("bare-{i}")),
        agent_id: agent_id.clone(),
        resources: vec![scalar("cpus", TASK_CPUS), scalar("mem", TASK_MEM)],
        command: Some(CommandInfo {
            value: Some("sleep 3600".into()),
            ..CommandInfo::default()
        }),
        ..TaskInfo::default()
    }
}

/// Waits until the master counts no running task.
pub(crate) async fn until_no_tasks(rig: &Rig) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let m = rig.get(&rig.mesos("/metrics/snapshot")).await?;
        if m["master/tasks_running"].as_u64() == Some(0) {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < GIVE_UP,
            "tasks still running after a teardown"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The app a launch deploys: `instances` instances of `sleep 3600`, 0.01 CPU, 1 MB, no ports.
pub(crate) fn app(id: &str, instances: usize) -> Value {
    json!({"id": id, "cmd": "sleep 3600", "instances": instances,
        "cpus": TASK_CPUS, "mem": TASK_MEM, "disk": 0, "portDefinitions": []})
}

/// Deletes the app `id` through Marathon and waits until the master counts no running task.
pub(crate) async fn remove_app(rig: &Rig, id: &str) -> anyhow::Result<()> {
    let resp = rig
        .client
        .delete(rig.marathon(&format!("/v2/apps{id}")))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "DELETE /v2/apps{id} answered {}",
        resp.status()
    );
    until_no_tasks(rig).await
}

/// Deploys `app` (see [`app`]) through Marathon and waits until all its instances run.
/// Returns its figures.
pub(crate) async fn marathon_launch(rig: &Rig, app: &Value) -> anyhow::Result<Value> {
    let id = app["id"].as_str().unwrap_or(APP_ID);
    let instances = app["instances"].as_u64().unwrap_or(0) as usize;
    let posted_at = SystemTime::now();
    let started = Instant::now();
    let resp = rig
        .client
        .post(rig.marathon("/v2/apps"))
        .json(app)
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().as_u16() == 201,
        "POST /v2/apps answered {}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    let list = rig.marathon(&format!("/v2/apps?id={id}"));
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let apps = rig.get(&list).await?;
        let running = apps["apps"][0]["tasksRunning"].as_u64().unwrap_or(0);
        if running as usize >= instances {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < GIVE_UP,
            "Marathon ran {running} of {instances} instances of {id} within {GIVE_UP:?}"
        );
    }
    let all_running = started.elapsed().as_secs_f64();
    let tasks = rig
        .get(&rig.marathon(&format!("/v2/apps{id}/tasks")))
        .await?;
    let posted = posted_at
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs_f64();
    let mut latencies: Vec<f64> = tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| humantime::parse_rfc3339(t["startedAt"].as_str()?).ok())
        .filter_map(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|at| at.as_secs_f64() - posted)
        .collect();
    latencies.sort_by(f64::total_cmp);
    anyhow::ensure!(
        latencies.len() == instances,
        "Marathon lists {} started tasks of {instances}",
        latencies.len()
    );
    Ok(json!({
        "instances": instances,
        "all_running_secs": all_running,
        "tasks_per_second": instances as f64 / all_running,
        "latency_p50_secs": percentile(&latencies, 0.5),
        "latency_p99_secs": percentile(&latencies, 0.99),
    }))
}

/// Fetches `/master/state` as a stream: time to the first byte, whole time, bytes, and the
/// tasks it lists (parsed as it arrives, without keeping the document).
async fn master_state(rig: &Rig) -> anyhow::Result<Value> {
    #[derive(serde::Deserialize)]
    struct Framework {
        tasks: Vec<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct State {
        slaves: Vec<serde::de::IgnoredAny>,
        frameworks: Vec<Framework>,
    }
    let started = Instant::now();
    let resp = rig
        .client
        .get(rig.mesos("/master/state"))
        .timeout(Duration::from_secs(120))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "/master/state: {}",
        resp.status()
    );
    let chunked = resp.content_length().is_none();
    let mut body = resp.bytes_stream();
    let (mut first_byte, mut bytes) = (None, Vec::new());
    while let Some(chunk) = body.next().await {
        first_byte.get_or_insert_with(|| started.elapsed().as_secs_f64());
        bytes.extend_from_slice(&chunk?);
    }
    let total = started.elapsed().as_secs_f64();
    let state: State = serde_json::from_slice(&bytes)?;
    Ok(json!({
        "first_byte_secs": first_byte,
        "total_secs": total,
        "bytes": bytes.len(),
        "chunked": chunked,
        "agents": state.slaves.len(),
        "tasks": state.frameworks.iter().map(|f| f.tasks.len()).sum::<usize>(),
    }))
}

/// The master's and Marathon's memory now.
fn memory(rig: &Rig) -> Value {
    let mut v = json!({});
    for (unit, pid) in rig.unit_pids() {
        let key = match unit.as_str() {
            "dcos-mesos-master.service" => "mesos_master",
            "dcos-marathon.service" => "marathon",
            _ => continue,
        };
        if let Some(r) = procfs::read(pid) {
            v[key] = json!({"rss_mib": r.rss_kib as f64 / 1024.0, "peak_rss_mib": r.peak_kib as f64 / 1024.0});
        }
    }
    v
}

async fn one_run(agents: usize, instances: usize) -> anyhow::Result<Value> {
    let mut rig = Rig::start().await?;
    let registered = rig.simulate(agents).await?;
    tracing::info!(agents, registered, "agents registered");
    let master = format!("{}:5050", crate::rig::MASTER_IP).parse()?;
    let bare = bare_framework(&rig.client, master, instances).await?;
    until_no_tasks(&rig).await?;
    tracing::info!(instances, bare, "minimal framework done");
    let marathon = marathon_launch(&rig, &app(APP_ID, instances)).await?;
    tracing::info!(instances, ?marathon, "Marathon done");
    let state = master_state(&rig).await?;
    let bare_rate = instances as f64 / bare;
    Ok(json!({
        "agents": agents,
        "instances": instances,
        "agents_registered_secs": registered,
        "marathon": marathon,
        "minimal_framework": {"all_running_secs": bare, "tasks_per_second": bare_rate},
        "ratio_to_minimal_framework": marathon["tasks_per_second"].as_f64().unwrap_or(0.0) / bare_rate,
        "memory_after": memory(&rig),
        "master_state": state,
    }))
}

async fn run(args: Args) -> anyhow::Result<Value> {
    let mut runs = Vec::new();
    for (agents, instances) in args.pairs("runs") {
        runs.push(one_run(agents.max(1), instances.max(1)).await?);
    }
    Ok(json!({"runs": runs}))
}

const PARAMS: &[Param] = &[Param {
    key: "runs",
    kind: Kind::Pairs,
    full: "1000x1000,1000x10000,10000x10000,10000x100000",
    tiny: "20x40",
    help: "AGENTSxINSTANCES launches, each on a fresh master node",
}];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "launch",
    about:
        "POST /v2/apps to every instance RUNNING on simulated agents; /master/state at that size",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

fn section(doc: &Value) -> String {
    use crate::report::{heading, num, ratio, table};
    let runs: Vec<&Value> = doc["figures"]["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let mut out = heading("Launch: POST /v2/apps to every instance RUNNING", doc);
    out.push_str(
        "Each run: a fresh master node (`dcos node run --role master`, every unit its own \
         process) on 127.0.90.1 and simulated agents (`dcos-bench simulate-agents`, tasks RUNNING \
         at once). The peer in the same run is a minimal framework with no state of its own \
         launching the same number of tasks on the same master and agents as fast as offers come; \
         it is torn down before Marathon deploys one app of that many instances (`sleep 3600`, \
         0.01 CPU, 1 MB). Latency is from the POST to each instance's `startedAt`. Published peer \
         figures for scale: HashiCorp Nomad placed 1,000,000 containers on 5,000 hosts in under 5 \
         minutes (about 3,300 per second, on a large cluster of machines, not measured here).\n\n",
    );
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let m = &r["marathon"];
            vec![
                num(&r["agents"], 0),
                num(&r["instances"], 0),
                num(&m["all_running_secs"], 1),
                num(&m["tasks_per_second"], 0),
                num(&m["latency_p50_secs"], 2),
                num(&m["latency_p99_secs"], 2),
                num(&r["minimal_framework"]["tasks_per_second"], 0),
                ratio(&r["ratio_to_minimal_framework"]),
                format!(
                    "{} / {}",
                    num(&r["memory_after"]["marathon"]["peak_rss_mib"], 0),
                    num(&r["memory_after"]["mesos_master"]["peak_rss_mib"], 0)
                ),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "agents",
            "instances",
            "all RUNNING (s)",
            "tasks/s",
            "p50 (s)",
            "p99 (s)",
            "minimal framework tasks/s (same run)",
            "ratio",
            "peak RSS MiB Marathon / master",
        ],
        &rows,
    ));
    out.push_str("\n`/master/state` at each size, read as a stream:\n\n");
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let s = &r["master_state"];
            vec![
                num(&s["agents"], 0),
                num(&s["tasks"], 0),
                num(&(s["bytes"].as_f64().map(|b| b / 1048576.0)).into(), 1),
                num(&s["first_byte_secs"], 3),
                num(&s["total_secs"], 2),
                if s["chunked"] == true { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "agents",
            "tasks",
            "size (MiB)",
            "first byte (s)",
            "whole (s)",
            "chunked",
        ],
        &rows,
    ));
    out
}
