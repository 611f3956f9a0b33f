//! Real launch: one real agent on 127.0.0.1; a framework launches a real process R times,
//! one at a time, and the time from the ACCEPT call to TASK_RUNNING is compared with
//! fork+exec+wait of the same command by this process, measured in the same run.

use std::time::Instant;

use dcos_mesos::api::{Id, TaskInfo, TaskState};
use dcos_mesos::scheduler::{self, Accept, Acknowledge, CallBody, Event, Kill, Operation};
use dcos_testkit::loopback;
use serde_json::{json, Value};

use crate::{framework, median, Args, Kind, Param, Scenario};

async fn run(args: Args) -> anyhow::Result<Value> {
    let launches = args.num("launches").max(1);
    const COMMAND: &str = "exec sleep 30";
    let master = loopback::master().await;
    let dir = tempfile::tempdir()?;
    let ports = loopback::free_port_range(10);
    let agent = loopback::agent(
        master.addr,
        "127.0.0.1:0".parse()?,
        dir.path().into(),
        &ports,
    )
    .await;
    let client = reqwest::Client::new();
    let (conn, mut events, _) =
        scheduler::subscribe(&client, master.addr, &framework("bench-launch")).await?;
    let mut to_running = Vec::new();
    for i in 0..launches {
        let offer = loop {
            if let Event::Offers(offers) = events.next().await? {
                if let Some(offer) = offers.offers.into_iter().next() {
                    break offer;
                }
            }
        };
        let task_id = format!("launch-{i}");
        let task: TaskInfo = serde_json::from_value(
            json!({"name": task_id, "task_id": {"value": task_id}, "agent_id": offer.agent_id,
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}, {"name": "mem", "type": "SCALAR", "scalar": {"value": 16}}],
            "command": {"value": COMMAND}}),
        )?;
        let start = Instant::now();
        conn.call(CallBody::Accept(Accept {
            offer_ids: vec![offer.id],
            operations: vec![Operation::launch(vec![task])],
            filters: None,
        }))
        .await?;
        loop {
            let Event::Update(update) = events.next().await? else {
                continue;
            };
            let status = update.status;
            if let Some(ack) = Acknowledge::of(&status) {
                conn.call(CallBody::Acknowledge(ack)).await?;
            }
            if status.task_id.value == task_id && status.state == TaskState::Running {
                to_running.push(start.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        conn.call(CallBody::Kill(Kill {
            task_id: Id::new(task_id),
            ..Kill::default()
        }))
        .await?;
    }
    let mut fork_exec = Vec::new();
    for _ in 0..launches {
        let start = Instant::now();
        tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("exec sleep 0")
            .status()
            .await?;
        fork_exec.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    agent.stop().await;
    master.stop().await;
    let (launch_ms, peer_ms) = (median(&to_running), median(&fork_exec));
    Ok(json!({
        "launches": launches,
        "command": COMMAND,
        "launch_to_running_median_ms": launch_ms,
        "fork_exec_wait_median_ms": peer_ms,
        "ratio_to_fork_exec": launch_ms / peer_ms,
    }))
}

const PARAMS: &[Param] = &[Param {
    key: "launches",
    kind: Kind::Num,
    full: "20",
    tiny: "2",
    help: "tasks launched, one after another",
}];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "real-launch",
    about: "LAUNCH to TASK_RUNNING of a real process, against fork+exec of the same command",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

fn section(doc: &Value) -> String {
    use crate::report::{heading, num, ratio, table};
    let f = &doc["figures"];
    let mut out = heading("Real launch: LAUNCH to TASK_RUNNING of a real process", doc);
    out.push_str(&format!(
        "One real agent on 127.0.0.1; a framework launches `{}` {} times, one at a time; the \
         time from the ACCEPT call to TASK_RUNNING against fork+exec+wait of `/bin/sh -c \
         'exec sleep 0'` by the benchmark, in the same run (medians).\n\n",
        f["command"].as_str().unwrap_or("?"),
        f["launches"],
    ));
    out.push_str(&table(
        &["figure", "dcos-rs", "fork+exec+wait (same run)", "ratio"],
        &[vec![
            "LAUNCH to TASK_RUNNING, median (ms)".into(),
            num(&f["launch_to_running_median_ms"], 2),
            num(&f["fork_exec_wait_median_ms"], 2),
            ratio(&f["ratio_to_fork_exec"]),
        ]],
    ));
    out.push_str(
        "\nA launch costs about three process spawns: the agent's sandbox and checkpoint \
         (fsync), the executor's wrapper shell, and the command itself.\n",
    );
    out
}
