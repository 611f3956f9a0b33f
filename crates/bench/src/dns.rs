//! DNS: `dnsperf` (Debian) against Mesos-DNS and against dnsmasq (Debian) serving the same
//! records, in the same run.
//!
//! Mesos-DNS gets a synthetic `/master/state` of T tasks of a framework `marathon` on A
//! agents, each task with one host port. dnsmasq is configured by the benchmark with every A
//! and SRV record of the zone Mesos-DNS made (a hosts file and `srv-host` lines),
//! authoritative for nothing else (`local=/mesos/`). Before measuring, both must give the
//! same answer to a sample of the queries. The query file asks each task's A name and SRV
//! name. Each server is measured twice for S seconds, alternating, with C concurrent clients;
//! the figure is the mean.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dcos_mesos_dns::{server, Config, MesosDns};
use dcos_testkit::dns::dig;
use serde_json::{json, Value};

use crate::{Args, Kind, Param, Scenario};
use tokio_util::sync::CancellationToken;

/// A leading master's state with `tasks` running tasks spread over `agents` agents.
fn synthetic_state(tasks: usize, agents: usize) -> Value {
    let slaves: Vec<Value> = (0..agents)
        .map(|a| json!({"id": format!("bench-S{a}"), "pid": format!("slave(1)@10.1.{}.{}:5051", a / 250, a % 250 + 1)}))
        .collect();
    let tasks: Vec<Value> = (0..tasks)
        .map(|t| {
            let agent = t % agents;
            json!({"id": format!("app-{t}.{t:08x}"), "name": format!("app-{t}"),
                "slave_id": format!("bench-S{agent}"), "state": "TASK_RUNNING",
                "resources": {"ports": format!("[{p}-{p}]", p = 20000 + t % 10000)}})
        })
        .collect();
    json!({
        "leader": "master@10.0.0.1:5050",
        "slaves": slaves,
        "frameworks": [{"name": "marathon", "pid": "scheduler-1@10.0.0.1:15101", "tasks": tasks}],
    })
}

/// Every A and SRV record of the zone as dnsmasq configuration.
fn dnsmasq_config(dns: &MesosDns, dir: &Path, port: u16) -> anyhow::Result<std::path::PathBuf> {
    let zone = dns.zone();
    let dot = |n: &str| n.trim_end_matches('.').to_string();
    let mut hosts = String::new();
    for (name, ips) in &zone.records.a {
        for ip in ips {
            hosts.push_str(&format!("{ip} {}\n", dot(name)));
        }
    }
    let hosts_path = dir.join("hosts");
    std::fs::write(&hosts_path, hosts)?;
    let mut conf = format!(
        "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n\
         local=/mesos/\nlocal-ttl={ttl}\nuser=root\npid-file=\naddn-hosts={hosts}\n",
        ttl = zone.ttl,
        hosts = hosts_path.display()
    );
    for (name, targets) in &zone.records.srv {
        for t in targets {
            conf.push_str(&format!(
                "srv-host={},{},{},0,1\n",
                dot(name),
                dot(&t.host),
                t.port
            ));
        }
    }
    let path = dir.join("dnsmasq.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// The queries: each task's A name and its SRV name.
fn query_file(tasks: usize, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let mut text = String::new();
    for t in 0..tasks {
        text.push_str(&format!("app-{t}.marathon.mesos A\n"));
        text.push_str(&format!("_app-{t}._tcp.marathon.mesos SRV\n"));
    }
    let path = dir.join("queries");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// One dnsperf run: queries per second, completed and lost.
fn dnsperf(
    server: SocketAddr,
    queries: &Path,
    seconds: u64,
    clients: usize,
) -> anyhow::Result<Value> {
    let out = Command::new("dnsperf")
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(queries)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            &clients.to_string(),
            "-q",
            "500",
        ])
        .output()
        .context("dnsperf runs (scripts/install-deps installs Debian's dnsperf)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "dnsperf failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |label: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(label))?;
        line.split_once(':')?
            .1
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let qps = field("Queries per second").context("dnsperf printed no rate")?;
    Ok(json!({
        "qps": qps,
        "completed": field("Queries completed"),
        "lost": field("Queries lost"),
    }))
}

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The answers a server gives to a sample of the queries, for comparing the two.
async fn sample(server: SocketAddr, tasks: usize) -> Vec<String> {
    let mut answers = Vec::new();
    for t in [0, tasks / 2, tasks - 1] {
        for args in [
            vec!["+short".to_string(), format!("app-{t}.marathon.mesos")],
            vec![
                "+short".to_string(),
                "SRV".into(),
                format!("_app-{t}._tcp.marathon.mesos"),
            ],
            vec!["+short".to_string(), format!("nothing-{t}.marathon.mesos")],
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut lines: Vec<String> =
                dig(server, &args).await.lines().map(String::from).collect();
            lines.sort();
            answers.push(lines.join("\n"));
        }
    }
    answers
}

async fn run(args: Args) -> anyhow::Result<Value> {
    let (tasks, agents) = (args.num("tasks").max(1), args.num("agents").max(1));
    let (seconds, clients) = (args.num("seconds") as u64, args.num("clients"));
    let dir = tempfile::tempdir()?;

    // Mesos-DNS with the synthetic state, on the same server code as the unit.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let mesos_dns = udp.local_addr()?;
    let config = Config::dcos(mesos_dns.ip(), vec![], vec![]);
    let dns = Arc::new(MesosDns::new(config));
    dns.install(synthetic_state(tasks, agents));
    let stop = CancellationToken::new();
    tokio::spawn(server::serve_udp(udp, dns.clone(), stop.clone()));

    // dnsmasq with the same records.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = dnsmasq_config(&dns, dir.path(), port)?;
    let dnsmasq = Dnsmasq(
        Command::new("dnsmasq")
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf.display()))
            .stdout(Stdio::null())
            .spawn()
            .context("dnsmasq runs (scripts/install-deps installs Debian's dnsmasq-base)")?,
    );
    let peer: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut ready = false;
    for _ in 0..50 {
        if !dig(peer, &["+short", "app-0.marathon.mesos"])
            .await
            .is_empty()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(ready, "dnsmasq did not answer");
    let ours = sample(mesos_dns, tasks).await;
    anyhow::ensure!(
        ours == sample(peer, tasks).await,
        "dnsmasq and Mesos-DNS answer differently"
    );
    anyhow::ensure!(
        ours.iter().take(2).all(|a| !a.is_empty()),
        "no answers: {ours:?}"
    );

    let queries = query_file(tasks, dir.path())?;
    let mut runs = json!({"mesos_dns": [], "dnsmasq": []});
    for _ in 0..2 {
        for (key, server) in [("mesos_dns", mesos_dns), ("dnsmasq", peer)] {
            let figures =
                tokio::task::block_in_place(|| dnsperf(server, &queries, seconds, clients))?;
            runs[key].as_array_mut().expect("an array").push(figures);
        }
    }
    drop(dnsmasq);
    stop.cancel();
    let mean = |key: &str| {
        let v = runs[key].as_array().expect("runs");
        v.iter().filter_map(|r| r["qps"].as_f64()).sum::<f64>() / v.len() as f64
    };
    let (ours, theirs) = (mean("mesos_dns"), mean("dnsmasq"));
    Ok(json!({
        "tasks": tasks,
        "agents": agents,
        "records": {"a": dns.zone().records.a.len(), "srv": dns.zone().records.srv.len()},
        "seconds_per_run": seconds,
        "clients": clients,
        "runs": runs,
        "mesos_dns_qps": ours,
        "dnsmasq_qps": theirs,
        "ratio_to_dnsmasq": ours / theirs,
    }))
}

const PARAMS: &[Param] = &[
    Param {
        key: "tasks",
        kind: Kind::Num,
        full: "1000",
        tiny: "50",
        help: "running tasks in the synthetic state (each gives an A and an SRV name)",
    },
    Param {
        key: "agents",
        kind: Kind::Num,
        full: "10",
        tiny: "5",
        help: "agents the tasks are spread over",
    },
    Param {
        key: "seconds",
        kind: Kind::Num,
        full: "10",
        tiny: "1",
        help: "seconds per dnsperf run (each server runs twice)",
    },
    Param {
        key: "clients",
        kind: Kind::Num,
        full: "8",
        tiny: "8",
        help: "dnsperf's concurrent clients",
    },
];

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "dns",
    about: "dnsperf against Mesos-DNS and against dnsmasq serving the same records",
    params: PARAMS,
    run: |args| Box::pin(run(args)),
    section,
};

fn section(doc: &Value) -> String {
    use crate::report::{heading, num, ratio, table};
    let f = &doc["figures"];
    let mut out = heading("DNS: Mesos-DNS against dnsmasq", doc);
    out.push_str(&format!(
        "{} running tasks of `marathon` on {} agents ({} A and {} SRV names); `dnsperf -c {} \
         -q 500`, each server twice for {} s, alternating; the figure is the mean. dnsmasq \
         (Debian's `dnsmasq-base`) is configured with every A and SRV record of the zone \
         Mesos-DNS made, and both must answer a sample of the queries identically first.\n\n",
        f["tasks"],
        f["agents"],
        f["records"]["a"],
        f["records"]["srv"],
        f["clients"],
        f["seconds_per_run"],
    ));
    out.push_str(&table(
        &[
            "figure",
            "Mesos-DNS (dcos-rs)",
            "dnsmasq (same run)",
            "ratio",
        ],
        &[vec![
            "queries per second".into(),
            num(&f["mesos_dns_qps"], 0),
            num(&f["dnsmasq_qps"], 0),
            ratio(&f["ratio_to_dnsmasq"]),
        ]],
    ));
    out
}
