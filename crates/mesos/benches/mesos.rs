//! The Mesos benchmark: how fast the master hands out offers, and how fast a real task starts.
//!
//! - `offers`: N simulated agents (default 1,000) and F frameworks (default 10) that decline
//!   every offer with a zero filter, for S seconds (default 10) after a warm-up. Reports
//!   offers per second against the limit the allocation interval sets in the same run
//!   (every agent offered once per interval: agents / interval).
//! - `launch`: one real agent; a framework launches a real process R times (default 20) and
//!   the time from the ACCEPT call to TASK_RUNNING is compared with fork+exec+wait of the
//!   same command measured in the same run.
//!
//! Run: `cargo bench -p dcos-mesos --bench mesos -- [--agents N] [--frameworks F]
//! [--seconds S] [--launches R] [--out FILE]`. It writes its figures as JSON to FILE
//! (default `bench/results/mesos.json`) and prints them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcos_mesos::api::FrameworkInfo;
use dcos_mesos::resources::Resources;
use dcos_mesos::{scheduler, simulate};
use dcos_testkit::{bench, loopback};
use serde_json::{json, Value};

/// The testkit master's allocation interval.
const ALLOCATION_INTERVAL: Duration = Duration::from_millis(100);

fn framework(name: &str) -> FrameworkInfo {
    serde_json::from_value(json!({"user": "root", "name": name})).expect("a FrameworkInfo")
}

async fn offers(agents: usize, frameworks: usize, seconds: u64) -> anyhow::Result<Value> {
    let master = loopback::master().await;
    let sims = simulate::start(
        simulate::Spec {
            master: master.addr,
            resources: Resources {
                cpus: 4.0,
                mem: 8192.0,
                disk: 8192.0,
                gpus: 0.0,
                ports: "[31000-32000]".parse()?,
            },
            start_delay: Duration::from_millis(10),
        },
        agents,
    )
    .await?;
    let counted = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = reqwest::Client::new();
    let mut loops = Vec::new();
    for f in 0..frameworks {
        let (conn, mut events, _) =
            scheduler::subscribe(&client, master.addr, &framework(&format!("bench-{f}"))).await?;
        let (counted, counting) = (counted.clone(), counting.clone());
        loops.push(tokio::spawn(async move {
            while let Ok(ev) = events.next().await {
                if ev["type"] != "OFFERS" {
                    continue;
                }
                let ids: Vec<Value> = ev["offers"]["offers"]
                    .as_array()
                    .map(|o| o.iter().map(|o| o["id"].clone()).collect())
                    .unwrap_or_default();
                if counting.load(Ordering::Relaxed) {
                    counted.fetch_add(ids.len() as u64, Ordering::Relaxed);
                }
                let decline = json!({"type": "DECLINE", "decline": {"offer_ids": ids, "filters": {"refuse_seconds": 0}}});
                let _ = conn.call(decline).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let per_sec = counted.load(Ordering::Relaxed) as f64 / elapsed;
    let limit = agents as f64 / ALLOCATION_INTERVAL.as_secs_f64();
    for l in loops {
        l.abort();
    }
    sims.stop().await;
    master.stop().await;
    Ok(json!({
        "agents": agents,
        "frameworks": frameworks,
        "seconds": elapsed,
        "offers_per_second": per_sec,
        "limit_offers_per_second": limit,
        "ratio_to_limit": per_sec / limit,
    }))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn launch(launches: usize) -> anyhow::Result<Value> {
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
            let ev = events.next().await?;
            if ev["type"] == "OFFERS" {
                break ev["offers"]["offers"][0].clone();
            }
        };
        let task_id = format!("launch-{i}");
        let task = json!({"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}, {"name": "mem", "type": "SCALAR", "scalar": {"value": 16}}],
            "command": {"value": COMMAND}});
        let start = Instant::now();
        conn.call(json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})).await?;
        loop {
            let ev = events.next().await?;
            if ev["type"] != "UPDATE" {
                continue;
            }
            let status = &ev["update"]["status"];
            if let Some(uuid) = status.get("uuid") {
                conn.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": uuid}})).await?;
            }
            if status["task_id"]["value"] == task_id.as_str() && status["state"] == "TASK_RUNNING" {
                to_running.push(start.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        conn.call(json!({"type": "KILL", "kill": {"task_id": {"value": task_id}}}))
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
    let (launch_ms, peer_ms) = (median(to_running), median(fork_exec));
    Ok(json!({
        "launches": launches,
        "command": COMMAND,
        "launch_to_running_median_ms": launch_ms,
        "fork_exec_wait_median_ms": peer_ms,
        "ratio_to_fork_exec": launch_ms / peer_ms,
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    bench::main(
        "mesos",
        &["agents", "frameworks", "seconds", "launches"],
        |args| async move {
            let offers = offers(
                args.num("agents", 1000),
                args.num("frameworks", 10),
                args.num("seconds", 10) as u64,
            )
            .await?;
            let launch = launch(args.num("launches", 20)).await?;
            anyhow::Ok(json!({"offers": offers, "launch": launch}))
        },
    )
}
