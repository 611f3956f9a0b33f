//! Offers: how long the master's allocation cycle takes against the number of agents and
//! frameworks.
//!
//! For each agent count, one master on 127.0.0.1 (DC/OS' 1 s allocation interval) and that
//! many simulated agents; then, for each framework count, that many frameworks subscribe and
//! decline every offer with a zero filter, so every agent is offered again in every cycle
//! (the most work a cycle can have). The master's own timer
//! (`allocator/mesos/allocation_run_ms` in `/metrics/snapshot`: choosing a framework for
//! every agent and sending the offers) is read once per cycle for S seconds. The limit is the
//! interval: a cycle longer than it delays the next. The growth exponent between two agent
//! counts is log(t2/t1)/log(a2/a1): 1 is linear.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcos_mesos::api::Filters;
use dcos_mesos::scheduler::{self, CallBody, Decline, Event};
use dcos_testkit::loopback;
use serde_json::{json, Value};

use crate::{framework, median, Args, Kind, Param, Scenario};

/// DC/OS' allocation interval.
const INTERVAL: Duration = Duration::from_secs(1);

/// Frameworks declining every offer; counts the offers while `counting`.
struct Decliners {
    loops: Vec<tokio::task::JoinHandle<()>>,
    conns: Vec<scheduler::Connection>,
    counted: Arc<AtomicU64>,
    counting: Arc<AtomicBool>,
}

impl Decliners {
    async fn subscribe(master: std::net::SocketAddr, n: usize) -> anyhow::Result<Decliners> {
        let client = reqwest::Client::new();
        let counted = Arc::new(AtomicU64::new(0));
        let counting = Arc::new(AtomicBool::new(false));
        let (mut loops, mut conns) = (Vec::new(), Vec::new());
        for f in 0..n {
            let (conn, mut events, _) =
                scheduler::subscribe(&client, master, &framework(&format!("offers-{f}"))).await?;
            conns.push(conn.clone());
            let (counted, counting) = (counted.clone(), counting.clone());
            loops.push(tokio::spawn(async move {
                while let Ok(ev) = events.next().await {
                    let Event::Offers(offers) = ev else {
                        continue;
                    };
                    let ids: Vec<_> = offers.offers.into_iter().map(|o| o.id).collect();
                    if counting.load(Ordering::Relaxed) {
                        counted.fetch_add(ids.len() as u64, Ordering::Relaxed);
                    }
                    let decline = CallBody::Decline(Decline {
                        offer_ids: ids,
                        filters: Some(Filters {
                            refuse_seconds: Some(0.0),
                        }),
                    });
                    let _ = conn.call(decline).await;
                }
            }));
        }
        Ok(Decliners {
            loops,
            conns,
            counted,
            counting,
        })
    }

    async fn teardown(self) {
        for l in self.loops {
            l.abort();
        }
        for c in self.conns {
            let _ = c.call(CallBody::Teardown).await;
        }
    }
}

/// The master's allocation timer: (runs so far, the last run's ms).
async fn allocation_timer(
    client: &reqwest::Client,
    master: &loopback::Running,
) -> anyhow::Result<(u64, f64)> {
    let m: Value = client
        .get(master.url("/metrics/snapshot"))
        .send()
        .await?
        .json()
        .await?;
    let key = "allocator/mesos/allocation_run_ms";
    Ok((
        m[format!("{key}/count")].as_u64().unwrap_or(0),
        m[key].as_f64().unwrap_or(f64::NAN),
    ))
}

/// One agent count against each framework count.
async fn with_agents(
    agents: usize,
    frameworks: &[usize],
    seconds: u64,
) -> anyhow::Result<Vec<Value>> {
    let master = loopback::master_with(INTERVAL).await;
    let client = reqwest::Client::new();
    // The agents in a process of their own: with the master's end of every connection in
    // this one, 10,000 agents would need twice the open files of one process.
    let log = tempfile::NamedTempFile::new()?;
    let (sims, registered_in) =
        crate::rig::simulate(&client, master.addr, agents, log.path()).await?;
    let mut rows = Vec::new();
    for &f in frameworks {
        let decliners = Decliners::subscribe(master.addr, f).await?;
        // Two cycles to reach the steady state (every agent offered, every offer declined).
        tokio::time::sleep(INTERVAL * 2).await;
        decliners.counting.store(true, Ordering::Relaxed);
        let start = Instant::now();
        let (mut last_count, _) = allocation_timer(&client, &master).await?;
        let mut cycles = Vec::new();
        while start.elapsed() < Duration::from_secs(seconds) {
            tokio::time::sleep(INTERVAL / 4).await;
            let (count, ms) = allocation_timer(&client, &master).await?;
            if count > last_count {
                cycles.push(ms);
                last_count = count;
            }
        }
        decliners.counting.store(false, Ordering::Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        let offers = decliners.counted.load(Ordering::Relaxed) as f64 / elapsed;
        let max = cycles.iter().copied().fold(f64::NAN, f64::max);
        let cycle = median(&cycles);
        tracing::info!(
            agents,
            frameworks = f,
            cycle_ms = cycle,
            offers,
            "allocation measured"
        );
        rows.push(json!({
            "agents": agents,
            "frameworks": f,
            "cycles": cycles.len(),
            "cycle_median_ms": cycle,
            "cycle_max_ms": max,
            "cycle_per_agent_us": cycle * 1000.0 / agents as f64,
            "ratio_to_interval": cycle / INTERVAL.as_secs_f64() / 1000.0,
            "offers_per_second": offers,
            "offer_limit_per_second": agents as f64 / INTERVAL.as_secs_f64(),
            "agents_registered_secs": registered_in,
        }));
        decliners.teardown().await;
    }
    drop(sims);
    master.stop().await;
    Ok(rows)
}

/// For each framework count, the growth exponent of the cycle time between the smallest and
/// the largest agent count.
fn growth(rows: &[Value]) -> Vec<Value> {
    let mut frameworks: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["frameworks"].as_u64())
        .collect();
    frameworks.sort_unstable();
    frameworks.dedup();
    frameworks
        .into_iter()
        .filter_map(|f| {
            let of_f: Vec<&Value> = rows.iter().filter(|r| r["frameworks"] == f).collect();
            let (first, last) = (of_f.first()?, of_f.last()?);
            let (a1, a2) = (first["agents"].as_f64()?, last["agents"].as_f64()?);
            let (t1, t2) = (
                first["cycle_median_ms"].as_f64()?,
                last["cycle_median_ms"].as_f64()?,
            );
            (a2 > a1).then(|| {
                json!({"frameworks": f, "from_agents": a1, "to_agents": a2,
                    "exponent": (t2 / t1).ln() / (a2 / a1).ln()})
            })
        })
        .collect()
}

async fn run(args: Args) -> anyhow::Result<Value> {
    let frameworks = args.list("frameworks");
    let mut rows = Vec::new();
    for agents in args.list("agents") {
        rows.extend(with_agents(agents.max(1), &frameworks, args.num("seconds") as u64).await?);
    }
    Ok(json!({
        "interval_secs": INTERVAL.as_secs_f64(),
        "rows": rows,
        "growth_in_agents": growth(&rows),
    }))
}

const PARAMS: &[Param] = &[
    Param {
        key: "agents",
        kind: Kind::List,
        full: "100,1000,10000",
        tiny: "20,50",
        help: "simulated agent counts",
    },
    Param {
        key: "frameworks",
        kind: Kind::List,
        full: "1,10,100",
        tiny: "1,2",
        help: "framework counts tried at each agent count",
    },
    Param {
        key: "seconds",
        kind: Kind::Num,
        full: "5",
        tiny: "2",
        help: "seconds of cycles measured per combination",
    },
];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "offers",
    about: "the master's allocation cycle time against agents and frameworks",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

fn section(doc: &Value) -> String {
    use crate::report::{heading, num, ratio, table};
    let f = &doc["figures"];
    let mut out = heading(
        "Offers: the allocation cycle against agents and frameworks",
        doc,
    );
    out.push_str(
        "One master (1 s allocation interval, DC/OS' default) and N simulated agents on \
         127.0.0.1; F frameworks decline every offer with a zero filter, so every agent is \
         offered in every cycle. The cycle time is the master's `allocator/mesos/allocation_run_ms` \
         (choosing a framework for every agent and sending the offers), the median of the \
         cycles measured; the limit is the interval.\n\n",
    );
    let rows: Vec<Vec<String>> = f["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                num(&r["agents"], 0),
                num(&r["frameworks"], 0),
                num(&r["cycle_median_ms"], 2),
                num(&r["cycle_per_agent_us"], 2),
                ratio(&r["ratio_to_interval"]),
                num(&r["offers_per_second"], 0),
                num(&r["offer_limit_per_second"], 0),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "agents",
            "frameworks",
            "cycle, median (ms)",
            "per agent (µs)",
            "cycle / interval",
            "offers/s",
            "offer limit/s (agents / interval)",
        ],
        &rows,
    ));
    let growth: Vec<String> = f["growth_in_agents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            format!(
                "{} framework(s): {:.2} from {} to {} agents",
                g["frameworks"],
                g["exponent"].as_f64().unwrap_or(f64::NAN),
                num(&g["from_agents"], 0),
                num(&g["to_agents"], 0)
            )
        })
        .collect();
    out.push_str(&format!(
        "\nGrowth exponent of the cycle time in agents (1 is linear): {}.\n",
        growth.join("; ")
    ));
    out
}
