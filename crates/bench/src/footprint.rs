//! Footprint: resident memory and CPU of every unit of a master node and of an agent node,
//! idle and under the launch load, and the cost of metrics collection per container.
//!
//! A master node (`dcos node run --role master`, every unit its own process) with simulated
//! agents, and one real agent node (`dcos node run --role agent`, every unit its own
//! process) in a network namespace of its own (see [`Rig::start_linked`]).
//!
//! - Idle: each unit's CPU over S seconds once all agents are registered, and its resident
//!   memory at the end.
//! - Metrics: a consumer polls the agent's dcos-metrics once a second as a metrics consumer
//!   would (`/v0/containers`, then each `/v0/containers/{id}`, on its unix socket). Three
//!   windows of W seconds: no task, polled (the baseline); C small command tasks on the real
//!   agent (through Marathon), not polled; the same tasks, polled. The cost per container is
//!   dcos-metrics-agent's and the agent's CPU and resident memory over the last window less
//!   the baseline, divided by C; the agent is counted because it computes the containers'
//!   statistics that dcos-metrics reads from its `/containers`.
//! - Under load: Marathon deploys one app of N instances on the simulated agents (kept off
//!   the real one by a constraint, as in the launch scenario); each unit's CPU from the
//!   POST to the last TASK_RUNNING, and its peak resident memory.
//!
//! The limits in the same run: the machine's cores (CPU) and its memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::launch;
use crate::procfs::{self, Reading};
use crate::rig::{Rig, AGENT_ATTRIBUTE};
use crate::{Args, Kind, Param, Scenario};

/// The simulator's row: it is not a unit, but it shares the machine.
const SIMULATOR: &str = "dcos-bench simulate-agents (not a unit)";
/// The app of the metrics tasks.
const METRICS_APP: &str = "/bench-metrics";
/// What each metrics task asks for besides launch's 0.01 CPU (MB).
const METRICS_TASK_MEM: f64 = 8.0;
/// The units whose cost grows with the containers a consumer reads.
const METRICS_UNIT: &str = "dcos-metrics-agent.service";
const AGENT_UNIT: &str = "dcos-mesos-slave.service";

type Procs = Vec<(String, u32)>;

fn processes(rig: &Rig) -> Procs {
    let mut all = rig.unit_pids();
    all.extend(rig.simulator_pid().map(|p| (SIMULATOR.to_string(), p)));
    all
}

fn read_all(procs: &[(String, u32)]) -> BTreeMap<String, Reading> {
    procs
        .iter()
        .filter_map(|(name, pid)| Some((name.clone(), procfs::read(*pid)?)))
        .collect()
}

/// The master's side (its units and the simulator) and the agent's units, read together.
fn read_nodes(master: &[(String, u32)], agent: &[(String, u32)]) -> [BTreeMap<String, Reading>; 2] {
    [read_all(master), read_all(agent)]
}

fn usage(from: &BTreeMap<String, Reading>, to: &BTreeMap<String, Reading>) -> Value {
    let mut v = json!({});
    for (name, r) in to {
        if let Some(f) = from.get(name) {
            v[name] = procfs::between(f, r);
        }
    }
    v
}

/// One poll as a metrics consumer makes it: `/v0/containers`, then each
/// `/v0/containers/{id}`. Returns the containers listed and how many answered with metrics
/// (a container that has none yet answers 204).
fn poll_once(socket: &Path) -> anyhow::Result<(usize, usize)> {
    let get = |path: &str| {
        dcos_testkit::http::get_unix(socket, path)
            .with_context(|| format!("GET {path} on {}", socket.display()))
    };
    let list = get("/v0/containers")?;
    anyhow::ensure!(
        list.status == 200,
        "/v0/containers answered {}: {}",
        list.status,
        list.body
    );
    let ids: Vec<String> = serde_json::from_str(&list.body)?;
    let mut answered = 0;
    for id in &ids {
        match get(&format!("/v0/containers/{id}"))? {
            r if r.status == 200 => answered += 1,
            r if r.status == 204 => {}
            r => anyhow::bail!("/v0/containers/{id} answered {}: {}", r.status, r.body),
        }
    }
    Ok((ids.len(), answered))
}

/// A metrics consumer polling once a second until finished (or dropped).
struct Consumer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<Value>>,
}

impl Consumer {
    fn start(socket: PathBuf) -> Consumer {
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut polls, mut requests, mut last_listed, mut last_answered) = (0, 0, 0, 0);
            let mut slowest = 0f64;
            loop {
                tokio::select! {
                    _ = until.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let (s, started) = (socket.clone(), std::time::Instant::now());
                let (listed, answered) =
                    tokio::task::spawn_blocking(move || poll_once(&s)).await??;
                slowest = slowest.max(started.elapsed().as_secs_f64());
                polls += 1;
                requests += 1 + listed;
                (last_listed, last_answered) = (listed, answered);
            }
            Ok(
                json!({"polls": polls, "requests": requests, "last_listed": last_listed,
                "last_answered": last_answered, "slowest_poll_secs": slowest}),
            )
        });
        Consumer { stop, task }
    }

    /// Stops it; its tally.
    async fn finish(mut self) -> anyhow::Result<Value> {
        self.stop.cancel();
        (&mut self.task).await?
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Each of `procs`' use over `secs` seconds, with a consumer polling the dcos-metrics at
/// `socket` throughout when given (and its tally).
async fn window(
    procs: &[(String, u32)],
    secs: u64,
    socket: Option<&Path>,
) -> anyhow::Result<Value> {
    let consumer = socket.map(|s| Consumer::start(s.to_path_buf()));
    if consumer.is_some() {
        // Its first poll, which fills dcos-metrics' caches, before the window opens.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let before = read_all(procs);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = read_all(procs);
    let tally = match consumer {
        Some(c) => c.finish().await?,
        None => Value::Null,
    };
    Ok(json!({"units": usage(&before, &after), "consumer": tally}))
}

/// The cost per container of `units` together: their CPU and resident memory over the
/// `polled` window less the `baseline` one, divided by `containers`.
fn cost(
    units: &[&str],
    baseline: &Value,
    unpolled: &Value,
    polled: &Value,
    containers: usize,
) -> Value {
    let sum = |w: &Value, key: &str| {
        units
            .iter()
            .map(|u| w["units"][u][key].as_f64().unwrap_or(f64::NAN))
            .sum::<f64>()
    };
    let n = containers as f64;
    let per_container = (sum(polled, "cpu_cores") - sum(baseline, "cpu_cores")) / n;
    json!({
        "cpu_cores_baseline": sum(baseline, "cpu_cores"),
        "cpu_cores_unpolled": sum(unpolled, "cpu_cores"),
        "cpu_cores": sum(polled, "cpu_cores"),
        "rss_mib_baseline": sum(baseline, "rss_mib"),
        "rss_mib": sum(polled, "rss_mib"),
        "cpu_cores_per_container": per_container,
        "rss_kib_per_container": (sum(polled, "rss_mib") - sum(baseline, "rss_mib")) * 1024.0 / n,
        "containers_per_core": 1.0 / per_container,
    })
}

/// The metrics figures: the three windows on the real agent's units (`agent`), the tasks
/// deployed before the second and removed after the third.
async fn metrics_cost(
    rig: &Rig,
    agent: &[(String, u32)],
    containers: usize,
    secs: u64,
) -> anyhow::Result<Value> {
    let socket = rig.agent_run_dir().join("dcos-metrics-agent.sock");
    let baseline = window(agent, secs, Some(&socket)).await?;
    let (key, value) = AGENT_ATTRIBUTE;
    let mut app = launch::app(METRICS_APP, containers);
    app["mem"] = json!(METRICS_TASK_MEM);
    app["constraints"] = json!([[key, "CLUSTER", value]]);
    let deploy = launch::marathon_launch(rig, &app).await?;
    let unpolled = window(agent, secs, None).await?;
    let polled = window(agent, secs, Some(&socket)).await?;
    launch::remove_app(rig, METRICS_APP).await?;
    let listed = polled["consumer"]["last_listed"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        listed == containers as u64,
        "dcos-metrics listed {listed} containers of the {containers} tasks running"
    );
    let of = |units: &[&str]| cost(units, &baseline, &unpolled, &polled, containers);
    Ok(json!({
        "containers": containers,
        "window_secs": secs,
        "task": {"cpus": app["cpus"], "mem": app["mem"], "cmd": app["cmd"]},
        "deploy": deploy,
        "windows": {"baseline": baseline, "unpolled": unpolled, "polled": polled},
        "metrics_agent": of(&[METRICS_UNIT]),
        "agent": of(&[AGENT_UNIT]),
        "both": of(&[METRICS_UNIT, AGENT_UNIT]),
    }))
}

async fn run(args: Args) -> anyhow::Result<Value> {
    let (agents, instances) = (args.num("agents").max(1), args.num("instances").max(1));
    let containers = args.num("containers").max(1);
    let metrics_secs = args.num("metrics-seconds").max(1) as u64;
    let mut rig = Rig::start_linked().await?;
    rig.simulate(agents).await?;
    let agent_start = rig.start_agent().await?;
    let (master, agent) = (processes(&rig), rig.agent_unit_pids());
    // A few allocation cycles first, so that idle means steady, not starting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = read_nodes(&master, &agent);
    tokio::time::sleep(Duration::from_secs(args.num("idle-seconds") as u64)).await;
    let idle_end = read_nodes(&master, &agent);
    let metrics = metrics_cost(&rig, &agent, containers, metrics_secs).await?;
    // The load on the simulated agents only, as in the launch scenario.
    let mut load = launch::app(launch::APP_ID, instances);
    let (key, value) = AGENT_ATTRIBUTE;
    load["constraints"] = json!([[key, "UNLIKE", value]]);
    let mid = read_nodes(&master, &agent);
    let launch = launch::marathon_launch(&rig, &load).await?;
    let loaded_end = read_nodes(&master, &agent);
    let machine = crate::machine::describe();
    Ok(json!({
        "agents": agents,
        "instances": instances,
        "idle": usage(&before[0], &idle_end[0]),
        "under_launch": usage(&mid[0], &loaded_end[0]),
        "agent_node": {
            "start_secs": agent_start,
            "idle": usage(&before[1], &idle_end[1]),
            "under_launch": usage(&mid[1], &loaded_end[1]),
        },
        "metrics": metrics,
        "launch": launch,
        "build": crate::machine::build(),
        "machine_cores": machine["cores"],
        "machine_memory_gib": machine["memory_gib"],
    }))
}

const PARAMS: &[Param] = &[
    Param {
        key: "agents",
        kind: Kind::Num,
        full: "1000",
        tiny: "20",
        help: "simulated agents",
    },
    Param {
        key: "instances",
        kind: Kind::Num,
        full: "10000",
        tiny: "40",
        help: "instances Marathon launches for the load",
    },
    Param {
        key: "idle-seconds",
        kind: Kind::Num,
        full: "10",
        tiny: "2",
        help: "seconds the idle figures cover",
    },
    Param {
        key: "containers",
        kind: Kind::Num,
        full: "100",
        tiny: "5",
        help: "tasks on the real agent whose metrics a consumer polls",
    },
    Param {
        key: "metrics-seconds",
        kind: Kind::Num,
        full: "30",
        tiny: "3",
        help: "seconds each metrics window covers (three windows)",
    },
];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "footprint",
    about: "resident memory and CPU of every master and agent unit, idle and under launch load; metrics cost per container",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

/// `x` as a share of `of`: `12.3%`.
fn share(v: &Value, of: f64) -> String {
    v.as_f64()
        .map_or("–".into(), |x| format!("{:.1}%", x / of * 100.0))
}

/// A table of processes: idle RSS and CPU, peak RSS and CPU under the load.
fn units_table(idle: &Value, load: &Value, cores: f64, mem_mib: f64) -> String {
    use crate::report::{num, table};
    let idle = idle.as_object().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = idle
        .iter()
        .map(|(name, i)| {
            let l = &load[name];
            vec![
                format!("`{name}`"),
                num(&i["rss_mib"], 1),
                format!(
                    "{} ({})",
                    num(&i["cpu_cores"], 3),
                    share(&i["cpu_cores"], cores)
                ),
                format!(
                    "{} ({})",
                    num(&l["peak_rss_mib"], 1),
                    share(&l["peak_rss_mib"], mem_mib)
                ),
                format!(
                    "{} ({})",
                    num(&l["cpu_cores"], 2),
                    share(&l["cpu_cores"], cores)
                ),
            ]
        })
        .collect();
    table(
        &[
            "process",
            "idle RSS (MiB)",
            "idle CPU (cores, share)",
            "peak RSS under load (MiB, share)",
            "CPU under load (cores, share)",
        ],
        &rows,
    )
}

fn metrics_section(m: &Value, cores: f64) -> String {
    use crate::report::{num, table};
    let consumer = &m["windows"]["polled"]["consumer"];
    let mut out = format!(
        "**Metrics collection per container.** A consumer polls the agent's dcos-metrics \
         once a second as a metrics consumer would: `/v0/containers`, then each \
         `/v0/containers/{{id}}`, on its unix socket (in the last window: {} polls of {} \
         containers, the slowest {} s). Three windows of {} s on the real agent: no task, \
         polled (the baseline); {} tasks (`{}`, {} CPU, {} MB, through Marathon) not polled; \
         the same tasks polled. Per container: the last window less the baseline, divided \
         by {}. The agent is counted with dcos-metrics: it computes the statistics \
         (`/containers`) that dcos-metrics reads; its memory includes keeping the tasks. \
         Shares are of the machine's {} cores.\n\n",
        num(&consumer["polls"], 0),
        num(&consumer["last_listed"], 0),
        num(&consumer["slowest_poll_secs"], 3),
        num(&m["window_secs"], 0),
        num(&m["containers"], 0),
        m["task"]["cmd"].as_str().unwrap_or("?"),
        m["task"]["cpus"],
        num(&m["task"]["mem"], 0),
        num(&m["containers"], 0),
        cores,
    );
    let rows: Vec<Vec<String>> = [
        (format!("`{METRICS_UNIT}`"), &m["metrics_agent"]),
        (format!("`{AGENT_UNIT}`"), &m["agent"]),
        ("both".to_string(), &m["both"]),
    ]
    .into_iter()
    .map(|(name, c)| {
        let millicores = |v: &Value| json!(v.as_f64().map(|x| x * 1000.0));
        vec![
            name,
            num(&millicores(&c["cpu_cores_baseline"]), 1),
            num(&millicores(&c["cpu_cores_unpolled"]), 1),
            format!(
                "{} ({})",
                num(&millicores(&c["cpu_cores"]), 1),
                share(&c["cpu_cores"], cores)
            ),
            num(&millicores(&c["cpu_cores_per_container"]), 3),
            num(&c["rss_mib_baseline"], 1),
            num(&c["rss_mib"], 1),
            num(&c["rss_kib_per_container"], 0),
        ]
    })
    .collect();
    let n = num(&m["containers"], 0);
    out.push_str(&table(
        &[
            "process",
            "CPU, no task, polled (millicores)",
            &format!("CPU, {n} tasks, not polled"),
            &format!("CPU, {n} tasks, polled (share)"),
            "CPU per container (millicores)",
            "RSS, no task (MiB)",
            &format!("RSS, {n} tasks (MiB)"),
            "RSS per container (KiB)",
        ],
        &rows,
    ));
    out.push_str(&format!(
        "\nWith {} containers polled once a second, dcos-metrics and the agent take {} of the \
         machine's cores ({} more than with none); at this cost one core would serve the \
         metrics of {} containers.\n",
        num(&m["containers"], 0),
        share(&m["both"]["cpu_cores"], cores),
        share(
            &json!(
                m["both"]["cpu_cores"].as_f64().unwrap_or(f64::NAN)
                    - m["both"]["cpu_cores_baseline"].as_f64().unwrap_or(f64::NAN)
            ),
            cores
        ),
        num(&m["both"]["containers_per_core"], 0)
    ));
    out
}

fn section(doc: &Value) -> String {
    use crate::report::{heading, num};
    let f = &doc["figures"];
    let mut out = heading(
        "Footprint: every master and agent unit, idle and under launch load; metrics per container",
        doc,
    );
    let cores = f["machine_cores"].as_f64().unwrap_or(1.0);
    let mem_mib = f["machine_memory_gib"].as_f64().unwrap_or(1.0) * 1024.0;
    out.push_str(&format!(
        "A master node (`dcos node run --role master`, every unit its own process) with {} \
         simulated agents, and one real agent node (`dcos node run --role agent`, every unit \
         its own process) in a network namespace of its own, joined to the master's by a \
         veth pair. Idle: CPU over the idle window, resident memory at its end. Under load: \
         Marathon deploys {} instances on the simulated agents ({} s to all RUNNING); CPU \
         from the POST to the last TASK_RUNNING, peak resident memory. Shares are of the \
         machine's {} cores and {} MiB, measured in the same run. Build: {}.\n\n",
        num(&f["agents"], 0),
        num(&f["instances"], 0),
        num(&f["launch"]["all_running_secs"], 1),
        cores,
        num(&json!(mem_mib), 0),
        f["build"].as_str().unwrap_or("not recorded"),
    ));
    out.push_str("**Master node.**\n\n");
    out.push_str(&units_table(&f["idle"], &f["under_launch"], cores, mem_mib));
    let agent = &f["agent_node"];
    if agent.is_object() {
        out.push_str(
            "\n**Agent node** (idle: no task on it; under load: the launch on the simulated \
             agents; a peak is the process' since it started, the metrics windows \
             included).\n\n",
        );
        out.push_str(&units_table(
            &agent["idle"],
            &agent["under_launch"],
            cores,
            mem_mib,
        ));
    }
    if f["metrics"].is_object() {
        out.push('\n');
        out.push_str(&metrics_section(&f["metrics"], cores));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_of(metrics: (f64, f64), agent: (f64, f64)) -> Value {
        let u = |(cpu, rss): (f64, f64)| json!({"cpu_cores": cpu, "rss_mib": rss});
        json!({"units": {METRICS_UNIT: u(metrics), AGENT_UNIT: u(agent)}})
    }

    #[test]
    fn the_cost_per_container_is_the_polled_window_less_the_baseline() {
        let baseline = window_of((0.01, 20.0), (0.02, 40.0));
        let unpolled = window_of((0.01, 20.0), (0.03, 45.0));
        let polled = window_of((0.06, 21.0), (0.07, 50.0));
        let both = cost(
            &[METRICS_UNIT, AGENT_UNIT],
            &baseline,
            &unpolled,
            &polled,
            100,
        );
        let close = |v: &Value, x: f64| (v.as_f64().unwrap() - x).abs() < 1e-9;
        assert!(close(&both["cpu_cores_per_container"], 0.001), "{both}");
        assert!(close(&both["rss_kib_per_container"], 112.64), "{both}");
        assert!(close(&both["containers_per_core"], 1000.0), "{both}");
        assert!(close(&both["cpu_cores_unpolled"], 0.04), "{both}");
    }

    #[test]
    fn the_section_shows_both_nodes_and_the_metrics_cost() {
        let idle = json!({"dcos-net.service": {"rss_mib": 20.0, "cpu_cores": 0.01}});
        let load = json!({"dcos-net.service": {"peak_rss_mib": 30.0, "cpu_cores": 0.02}});
        let baseline = window_of((0.01, 20.0), (0.02, 40.0));
        let polled = window_of((0.06, 21.0), (0.07, 50.0));
        let doc = json!({"date": "2026-12-07", "command": "dcos-bench footprint", "wall_seconds": 9,
            "figures": {"agents": 20, "instances": 40, "machine_cores": 2, "machine_memory_gib": 1,
                "idle": idle, "under_launch": load,
                "agent_node": {"idle": idle, "under_launch": load},
                "metrics": {"containers": 100, "window_secs": 30,
                    "task": {"cpus": 0.01, "mem": 8.0, "cmd": "sleep 3600"},
                    "windows": {"polled": {"consumer": {"polls": 31, "last_listed": 100}}},
                    "metrics_agent": cost(&[METRICS_UNIT], &baseline, &baseline, &polled, 100),
                    "agent": cost(&[AGENT_UNIT], &baseline, &baseline, &polled, 100),
                    "both": cost(&[METRICS_UNIT, AGENT_UNIT], &baseline, &baseline, &polled, 100)}}});
        let text = section(&doc);
        assert_eq!(
            text.matches("| `dcos-net.service` | 20.0 | 0.010 (0.5%) |")
                .count(),
            2,
            "{text}"
        );
        assert!(
            text.contains("| both | 30.0 | 30.0 | 130.0 (6.5%) | 1.000 | 60.0 | 71.0 | 113 |"),
            "{text}"
        );
        assert!(
            text.contains("take 6.5% of the machine's cores (5.0% more than with none)"),
            "{text}"
        );
        assert!(text.contains("the metrics of 1,000 containers"), "{text}");
    }
}
