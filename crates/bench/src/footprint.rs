//! Footprint: resident memory and CPU of every unit of a master node, idle and under the
//! launch load.
//!
//! A master node (`dcos node run --role master`, every unit its own process) with simulated
//! agents. Idle: each unit's CPU over S seconds once the agents are registered, and its
//! resident memory at the end. Under load: Marathon deploys one app of N instances on the
//! simulated agents (as in the launch scenario); each unit's CPU from the POST to the last
//! TASK_RUNNING, and its peak resident memory. The limits in the same run: the machine's
//! cores (CPU) and its memory.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::procfs::{self, Reading};
use crate::rig::Rig;
use crate::{Args, Kind, Param, Scenario};

/// The simulator's row: it is not a unit, but it shares the machine.
const SIMULATOR: &str = "dcos-bench simulate-agents (not a unit)";

fn processes(rig: &Rig) -> Vec<(String, u32)> {
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

fn usage(from: &BTreeMap<String, Reading>, to: &BTreeMap<String, Reading>) -> Value {
    let mut v = json!({});
    for (name, r) in to {
        if let Some(f) = from.get(name) {
            v[name] = procfs::between(f, r);
        }
    }
    v
}

async fn run(args: Args) -> anyhow::Result<Value> {
    let (agents, instances) = (args.num("agents").max(1), args.num("instances").max(1));
    let mut rig = Rig::start().await?;
    rig.simulate(agents).await?;
    let procs = processes(&rig);
    // A few allocation cycles first, so that idle means steady, not starting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = read_all(&procs);
    tokio::time::sleep(Duration::from_secs(args.num("idle-seconds") as u64)).await;
    let idle_end = read_all(&procs);
    let launch = crate::launch::marathon_launch(&rig, instances).await?;
    let loaded_end = read_all(&procs);
    let machine = crate::machine::describe();
    Ok(json!({
        "agents": agents,
        "instances": instances,
        "idle": usage(&before, &idle_end),
        "under_launch": usage(&idle_end, &loaded_end),
        "launch": launch,
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
];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "footprint",
    about: "resident memory and CPU of every master unit, idle and under launch load",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

fn section(doc: &Value) -> String {
    use crate::report::{heading, num, table};
    let f = &doc["figures"];
    let mut out = heading(
        "Footprint: every master unit, idle and under launch load",
        doc,
    );
    let cores = f["machine_cores"].as_f64().unwrap_or(1.0);
    let mem_mib = f["machine_memory_gib"].as_f64().unwrap_or(1.0) * 1024.0;
    out.push_str(&format!(
        "A master node (`dcos node run --role master`, every unit its own process) with {} \
         simulated agents. Idle: CPU over the idle window, resident memory at its end. Under \
         load: Marathon deploys {} instances ({} s to all RUNNING); CPU from the POST to the \
         last TASK_RUNNING, peak resident memory. Shares are of the machine's {} cores and \
         {} MiB, measured in the same run.\n\n",
        num(&f["agents"], 0),
        num(&f["instances"], 0),
        num(&f["launch"]["all_running_secs"], 1),
        cores,
        num(&json!(mem_mib), 0),
    ));
    let idle = f["idle"].as_object().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = idle
        .iter()
        .map(|(name, i)| {
            let l = &f["under_launch"][name];
            let share = |v: &Value, of: f64| {
                v.as_f64()
                    .map_or("–".into(), |x| format!("{:.1}%", x / of * 100.0))
            };
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
    out.push_str(&table(
        &[
            "process",
            "idle RSS (MiB)",
            "idle CPU (cores, share)",
            "peak RSS under load (MiB, share)",
            "CPU under load (cores, share)",
        ],
        &rows,
    ));
    out
}
